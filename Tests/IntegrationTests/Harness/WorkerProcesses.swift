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

extension WorkerProcesses {
    /// Waits until each listed replica answers `GET /ready` with 200 (subscribed, PostgreSQL up).
    func awaitReady(_ replicas: [(WorkerRole, Int)]) async throws {
        for (role, replica) in replicas {
            let port = try #require(healthPort(role, replica: replica))
            let ready = await TestEnvironment.eventually(timeout: .seconds(60)) {
                (try? await TestEnvironment.run("/usr/bin/curl", ["-fsS", "http://127.0.0.1:\(port)/ready"]))?.status == 0
            }
            guard ready else { throw TestFailure("\(role.rawValue)-\(replica) never became ready:\n\(log(role, replica: replica).suffix(2000))") }
        }
    }
}
