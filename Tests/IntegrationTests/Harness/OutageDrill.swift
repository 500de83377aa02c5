import Domain
import Foundation
import Messaging
import Postgres
import TestSupport
import Testing

/// A whole Emporium as real processes with production settings (the default retry policy,
/// query deadlines and saga reconciler), under a steady checkout load, for drills that take
/// a server away for minutes or freeze it. `make test` runs the drills alone, after the rest.
struct OutageDrill {
    let stack: Stack
    let api: APIProcess
    let workers: WorkerProcesses
    let productId: UUID
    let initialStock: Int
    /// Customers with a filled cart, ready to check out.
    let customers: [(token: String, quantity: Int)]

    /// Starts the API and one worker of each role as processes, with default settings, and
    /// prepares `customers` carts.
    static func run(customers count: Int, _ body: @Sendable (OutageDrill) async throws -> Void) async throws {
        var options = Stack.Options()
        options.inProcessWorkers = false
        // Every process declares the queues: all of them with the production policy.
        options.policy = QueuePolicy()
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let initialStock = 100_000
            let productId = try await stack.product(admin, stock: initialStock)
            var customers: [(String, Int)] = []
            for index in 0..<count {
                let (_, token) = try await stack.customer("drill\(index)-\(UUID().uuidString.prefix(6))")
                try await stack.addToCart(token, productId, quantity: 1 + index % 2)
                customers.append((token, 1 + index % 2))
            }
            let api = try await APIProcess(stack: stack, defaultPolicy: true, extraEnvironment: ["LOG_LEVEL": "info"])
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 20, defaultPolicy: true)
            for role in WorkerRole.allCases { try workers.start(role) }
            try await workers.awaitReady(WorkerRole.allCases.map { ($0, 1) })
            let drill = OutageDrill(stack: stack, api: api, workers: workers, productId: productId, initialStock: initialStock, customers: customers)
            do {
                try await body(drill)
            } catch {
                workers.stopAll()
                api.stop()
                throw error
            }
            workers.stopAll()
            api.stop()
        }
    }

    /// Runs `scripts/restart-service.sh service action`.
    static func service(_ service: String, _ action: String) async throws {
        let (status, output) = try await TestEnvironment.run(
            TestEnvironment.repositoryRoot.appendingPathComponent("scripts/restart-service.sh").path, [service, action])
        guard status == 0 else { throw TestFailure("restart-service \(service) \(action) failed: \(output)") }
    }

    /// One customer's checkout as a careful client does it: on a 503, a 409 (the same key
    /// still in flight) or no answer at all, the same request again with the same
    /// Idempotency-Key, a second later, until `deadline`. Every `cancel`led order is then
    /// cancelled the same way (a 409 there means it went too far to cancel, also an answer).
    func checkout(_ token: String, cancel: Bool, deadline: ContinuousClock.Instant) async throws -> UUID {
        let key = UUID().uuidString
        let headers = ["Authorization": "Bearer \(token)", "Idempotency-Key": key]
        var orderId: UUID?
        while orderId == nil {
            let (status, body) = (try? await api.request("POST", "/api/v1/orders", json: Stack.orderBody(), headers: headers)) ?? (0, "")
            switch status {
            case 201: orderId = uuid(jsonObject(body)["id"])
            case 0, 409, 503: break
            default: throw TestFailure("placement answered \(status): \(body)")
            }
            if orderId == nil {
                guard ContinuousClock.now < deadline else { throw TestFailure("the API never accepted the order (last: \(status) \(body))") }
                try await Task.sleep(for: .seconds(1))
            }
        }
        guard let orderId else { throw TestFailure("unreachable") }
        guard cancel else { return orderId }
        while true {
            let (status, body) = (try? await api.request("POST", "/api/v1/orders/\(orderId)/cancel", headers: ["Authorization": "Bearer \(token)"])) ?? (0, "")
            switch status {
            case 200, 409: return orderId
            case 0, 503: break
            default: throw TestFailure("cancel answered \(status): \(body)")
            }
            guard ContinuousClock.now < deadline else { throw TestFailure("the API never answered the cancellation (last: \(status))") }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// The HTTP status `url` answers and how long that took; status 0 when nothing answered.
    static func probe(_ url: String) async -> (status: Int, headers: String, elapsed: Duration) {
        let started = ContinuousClock.now
        let result = try? await TestEnvironment.run("/usr/bin/curl", ["-s", "-D", "-", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", url])
        let output = result?.output ?? ""
        // Headers end in "\r\n", which Swift treats as one Character: split on any newline.
        let status = Int(output.split(whereSeparator: \.isNewline).last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
        return (status, output, ContinuousClock.now - started)
    }

    /// `/ready` of the API and of each worker.
    var readyURLs: [String] {
        ["\(api.url)/ready"] + WorkerRole.allCases.compactMap { workers.healthPort($0).map { "http://127.0.0.1:\($0)/ready" } }
    }

    /// Whether every listed `/ready` answers `status` (each polled until `timeout`).
    func allReady(answer status: Int, within timeout: Duration) async -> [String] {
        var failing: [String] = []
        for url in readyURLs where !(await TestEnvironment.eventually(timeout: timeout) { await Self.probe(url).status == status }) {
            failing.append(url)
        }
        return failing
    }

    /// Orders among `ids` not yet CONFIRMED or CANCELLED.
    func unfinished(_ ids: [UUID]) async throws -> Int {
        try await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status NOT IN ('CONFIRMED', 'CANCELLED')", [ids])
    }

    /// Orders among `ids` whose money does not add up: a confirmed order charged other than
    /// its total (or refunded), a cancelled one with a net charge left.
    func moneyMismatches(_ ids: [UUID]) async throws -> Int {
        try await stack.count(
            """
            SELECT count(*) FROM (
              SELECT o.status, o.total_cents,
                coalesce((SELECT sum(f.amount_cents) FROM fake_provider_operations f WHERE f.order_id = o.id AND f.kind = 'charge' AND f.outcome = 'succeeded'), 0) AS charged,
                coalesce((SELECT sum(f.amount_cents) FROM fake_provider_operations f WHERE f.order_id = o.id AND f.kind = 'refund'), 0) AS refunded
              FROM orders o WHERE o.id = ANY($1)) m
            WHERE (m.status = 'CONFIRMED' AND (m.charged <> m.total_cents OR m.refunded <> 0))
               OR (m.status = 'CANCELLED' AND m.charged <> m.refunded)
            """, [ids])
    }

    /// The stock the product should have: the initial stock less what confirmed orders bought.
    func expectedStock(_ ids: [UUID]) async throws -> Int {
        initialStock
            - (try await stack.count(
                "SELECT coalesce(sum(i.quantity), 0)::int8 FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.id = ANY($1) AND o.status = 'CONFIRMED'",
                [ids]))
    }

    /// Everything settled: orders terminal, money and stock adding up, no key in flight.
    func settled(_ ids: [UUID]) async -> Bool {
        guard (try? await unfinished(ids)) == 0, (try? await moneyMismatches(ids)) == 0,
            let expected = try? await expectedStock(ids), (try? await stack.stock(productId)) == expected,
            (try? await stack.count("SELECT count(*) FROM idempotency_keys WHERE status = 'IN_FLIGHT'")) == 0
        else { return false }
        return true
    }

    /// Records an issue for everything that does not hold at the end of a drill.
    func expectIntact(_ ids: [UUID], context: String) async throws {
        #expect(try await unfinished(ids) == 0, "orders not terminal \(context)")
        #expect(try await moneyMismatches(ids) == 0, "orders whose money does not add up \(context)")
        #expect(
            try await stack.count(
                "SELECT count(*) FROM (SELECT order_id FROM fake_provider_operations WHERE kind = 'charge' AND outcome = 'succeeded' GROUP BY order_id HAVING count(*) > 1) d"
            ) == 0)
        #expect(try await stack.stock(productId) == expectedStock(ids), "stock \(context)")
        #expect(try await stack.count("SELECT count(*) FROM idempotency_keys WHERE status = 'IN_FLIGHT'") == 0, "keys in flight \(context)")
        for role in WorkerRole.allCases {
            #expect(try await stack.deadLetters(role) == 0, "dead letters in \(role.rawValue) \(context)")
        }
        #expect(api.isRunning, "the API exited:\n\(api.log.suffix(3000))")
        for role in WorkerRole.allCases {
            #expect(workers.isRunning(role), "the \(role.rawValue) worker exited:\n\(workers.log(role).suffix(3000))")
        }
    }
}

/// A JSON object from a response body.
func jsonObject(_ body: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
}
