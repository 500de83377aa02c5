import Domain
import Foundation
import HTTPTypes
import Messaging
import Postgres
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real worker executables as child processes, so a test can `kill -9` them.
final class WorkerProcesses: @unchecked Sendable {
    /// One running replica: its process and the port of its health server.
    private struct Replica {
        let process: Process
        let healthPort: Int
    }

    private var processes: [String: Replica] = [:]
    private let environment: [String: String]
    private let logDirectory: URL
    private let lock = NSLock()

    /// Where `swift build` put the executables: next to the test bundle.
    static let binDirectory: URL = {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            TestEnvironment.repositoryRoot.appendingPathComponent(".build/debug"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("emporium-stock-worker").path) } ?? candidates[1]
    }()

    /// Workers for `stack`; `defaultPolicy` leaves the production retry policy (1 s, 5 s, 30 s;
    /// five attempts; delivery limit 10) instead of the tests' short one, and then the stack
    /// must declare its queues with the defaults too.
    init(stack: Stack, providerLatencyMS: Int, defaultPolicy: Bool = false, extraEnvironment: [String: String] = [:]) throws {
        var environment = stack.processEnvironment
        environment["PAYMENT_PROVIDER_LATENCY_MS"] = String(providerLatencyMS)
        environment["LOG_LEVEL"] = "warning"
        environment["DB_POOL_SIZE"] = "4"
        if !defaultPolicy { environment.merge(Self.policyEnvironment) { _, new in new } }
        environment["WORKER_DRAIN_TIMEOUT_MS"] = "3000"
        environment["FAKE_PROVIDER_FAULTS"] = "true"
        // The drills crash workers on purpose; the runtime's symbolicated backtrace takes
        // seconds per crash on a loaded machine and tells these tests nothing.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        environment.merge(extraEnvironment) { _, new in new }
        self.environment = environment
        logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("worker-logs"))
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
    }

    /// The stack's queue policy as the variables every process must share (they shape the
    /// queues' declarations).
    static var policyEnvironment: [String: String] {
        let policy = Stack.Options().policy
        return [
            "RETRY_DELAYS_MS": policy.retryDelays.map { String($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000) }.joined(
                separator: ","),
            "RETRY_MAX_ATTEMPTS": String(policy.maxAttempts),
            "WORKER_DELIVERY_LIMIT": String(policy.deliveryLimit),
        ]
    }

    /// The log file of a replica (JSON lines).
    func logLines(_ role: WorkerRole, replica: Int = 1) -> [String] { log(role, replica: replica).split(separator: "\n").map(String.init) }

    private static func key(_ role: WorkerRole, _ replica: Int) -> String { "\(role.rawValue)-\(replica)" }

    /// Starts replica `replica` of `role` (instance name `<role>-<replica>`, as in the inbox's
    /// `handled_by`), with its health server on a free port.
    func start(_ role: WorkerRole, replica: Int = 1) throws {
        let executable = Self.binDirectory.appendingPathComponent("emporium-\(role.rawValue)-worker")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw TestFailure("\(executable.path) is missing: run `swift build` before the tests (make test does)")
        }
        let key = Self.key(role, replica)
        let port = try TestEnvironment.freePort()
        let process = Process()
        process.executableURL = executable
        var environment = self.environment
        environment["EMPORIUM_INSTANCE"] = key
        environment["HEALTH_PORT"] = String(port)
        process.environment = environment
        let log = logDirectory.appendingPathComponent("\(key).log")
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        lock.withLock { processes[key] = Replica(process: process, healthPort: port) }
    }

    /// The health server's port of a replica.
    func healthPort(_ role: WorkerRole, replica: Int = 1) -> Int? { lock.withLock { processes[Self.key(role, replica)]?.healthPort } }

    /// `kill -9`: no cleanup, no acks, no commits in flight.
    func kill9(_ role: WorkerRole, replica: Int = 1) {
        guard let process = lock.withLock({ processes[Self.key(role, replica)]?.process }) else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Whether the replica's process is alive.
    func isRunning(_ role: WorkerRole, replica: Int = 1) -> Bool { lock.withLock { processes[Self.key(role, replica)]?.process.isRunning ?? false } }

    /// SIGTERM to one replica; its exit status and how long it took to exit.
    func terminate(_ role: WorkerRole, replica: Int = 1) -> (Int32, Duration) {
        guard let process = lock.withLock({ processes[Self.key(role, replica)]?.process }) else { return (-1, .zero) }
        let start = ContinuousClock.now
        process.terminate()
        process.waitUntilExit()
        return (process.terminationStatus, ContinuousClock.now - start)
    }

    /// SIGTERM to all, waiting for each to exit.
    func stopAll() {
        let all = lock.withLock { processes.values.map(\.process) }
        for process in all where process.isRunning { process.terminate() }
        for process in all { process.waitUntilExit() }
    }

    /// Exit statuses of stopped processes (SIGTERM must exit 0; a kill -9 shows as 9).
    var exitStatuses: [Int32] { lock.withLock { processes.values.map(\.process).filter { !$0.isRunning }.map(\.terminationStatus) } }

    func log(_ role: WorkerRole, replica: Int = 1) -> String {
        (try? String(contentsOf: logDirectory.appendingPathComponent("\(Self.key(role, replica)).log"), encoding: .utf8)) ?? ""
    }
}

@Suite("Crashing workers mid-flight")
struct CrashTests {
    @Test("kill -9 of each worker while 100 orders are in flight: all terminal, no double charge, stock adds up")
    func killNineEachWorker() async throws {
        var options = Stack.Options()
        options.inProcessWorkers = false
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let initialStock = 1_000
            let productId = try await stack.product(admin, stock: initialStock)
            var customers: [(token: String, method: String)] = []
            for index in 0..<100 {
                let (_, token) = try await stack.customer("crash\(index)-\(UUID().uuidString.prefix(6))")
                try await stack.addToCart(token, productId, quantity: 1 + index % 3)
                customers.append((token, index % 10 == 0 ? "tok_chargeDeclined" : "tok_visa"))
            }
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 20)
            for role in WorkerRole.allCases { try workers.start(role) }

            // Orders go in over about four seconds while each worker in turn is killed and
            // restarted.
            let placing = Task {
                try await withThrowingTaskGroup(of: UUID.self) { group in
                    for (index, customer) in customers.enumerated() {
                        if index % 10 == 0 { try await Task.sleep(for: .milliseconds(400)) }
                        group.addTask { try await stack.placeOrder(customer.token, paymentMethod: customer.method) }
                    }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
            }
            for role in [WorkerRole.payment, .stock, .order, .notification] {
                try await Task.sleep(for: .milliseconds(700))
                workers.kill9(role)
                try await Task.sleep(for: .milliseconds(300))
                try workers.start(role)
            }
            let orderIds = try await placing.value
            #expect(orderIds.count == 100)

            var confirmed: [UUID] = []
            var cancelled: [UUID] = []
            for orderId in orderIds {
                let final = try await stack.awaitTerminal(orderId, timeout: .seconds(120))
                if final.status == "CONFIRMED" {
                    confirmed.append(orderId)
                } else if final.status == "CANCELLED" {
                    cancelled.append(orderId)
                } else {
                    Issue.record("order \(orderId) stuck in \(final.status)")
                }
            }
            #expect(confirmed.count == 90)
            #expect(cancelled.count == 10)
            #expect(try await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND cancellation_reason = 'payment_failed'", [cancelled]) == 10)

            // No order charged more than once at the provider, and our records agree with it.
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM (SELECT order_id FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded' GROUP BY order_id HAVING count(*) > 1) AS doubles"
                ) == 0)
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded'") == 90)
            #expect(try await stack.count("SELECT count(*) FROM payments WHERE status = 'SUCCEEDED'") == 90)

            // Stock adds up: what confirmed orders bought is gone, everything else is back.
            let sold = try await stack.count("SELECT coalesce(sum(quantity), 0)::int8 FROM order_items WHERE order_id = ANY($1)", [confirmed])
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == initialStock - sold })
            // The stock worker commits reservations on `order.confirmed`, after the order is
            // terminal, and it may be the worker that was just restarted.
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(60)) {
                    (try? await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = ANY($1) AND status <> 'COMMITTED'", [confirmed])) == 0
                })
            #expect(
                await TestEnvironment.eventually {
                    (try? await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = ANY($1) AND status <> 'RELEASED'", [cancelled])) == 0
                })
            // Every order is told exactly once.
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(60)) {
                    (try? await stack.count("SELECT count(DISTINCT order_id) FROM notifications WHERE order_id = ANY($1)", [orderIds])) == 100
                })
            #expect(try await stack.count("SELECT count(*) FROM notifications WHERE order_id = ANY($1)", [orderIds]) == 100)

            workers.stopAll()
            #expect(workers.exitStatuses.allSatisfy { $0 == 0 }, "SIGTERM should exit 0:\n\(workers.log(.payment).suffix(2000))")
        }
    }
}
