import Domain
import Foundation
import HTTPTypes
import Messaging
import Observability
import OperatorTools
import Store
import TestSupport
import Testing

@Suite("Logs and traces", .timeLimit(.minutes(10)))
struct ObservabilityTests {
    @Test("API log lines are JSON with request ids; signing up, in and refreshing leaves no password or token in them")
    func jsonLogsWithoutSecrets() async throws {
        try await Stack.apiOnly { stack in
            let api = try await APIProcess(stack: stack)
            let email = "\(TestEnvironment.uniqueName("logs"))@example.com"
            let password = "Sekrit-\(UUID().uuidString.prefix(12))"
            #expect(
                try await api.request("POST", "/api/v1/auth/register", json: ["email": email, "password": password, "first_name": "Log", "last_name": "Test"])
                    .status == 201)
            let login = try await api.request("POST", "/api/v1/auth/login", json: ["email": email, "password": password])
            #expect(login.status == 200)
            let tokens = try #require(jsonLogLine(login.body))
            let access = try #require(tokens["access_token"] as? String)
            let refresh = try #require(tokens["refresh_token"] as? String)
            let refreshed = try await api.request("POST", "/api/v1/auth/refresh", json: ["refresh_token": refresh])
            #expect(refreshed.status == 200)
            let newRefresh = try #require(jsonLogLine(refreshed.body)?["refresh_token"] as? String)
            #expect(try await api.request("GET", "/api/v1/users/me", headers: ["Authorization": "Bearer \(access)"]).status == 200)
            #expect(try await api.request("POST", "/api/v1/auth/login", json: ["email": email, "password": "\(password)-wrong"]).status == 401)
            api.stop()

            let lines = api.logLines
            #expect(lines.count >= 5)
            var requests = 0
            for line in lines {
                guard let fields = jsonLogLine(line) else {
                    Issue.record("not a JSON object: \(line)")
                    continue
                }
                #expect(fields["ts"] is String && fields["level"] is String && fields["msg"] is String && fields["logger"] is String, "\(line)")
                if fields["msg"] as? String == "request" {
                    requests += 1
                    #expect((fields["request.id"] as? String)?.isEmpty == false, "\(line)")
                    #expect(fields["http.status"] is String && fields["http.path"] is String)
                }
                for secret in [password, access, refresh, newRefresh, "Bearer "] {
                    #expect(!line.contains(secret), "a log line carries a secret: \(line)")
                }
            }
            #expect(requests >= 5)
        }
    }

    @Test("each PostgreSQL session of the API and the workers names its process and pool in pg_stat_activity")
    func sessionsNameTheirProcess() async throws {
        var options = Stack.Options()
        // After-commit publishes, not the relay, mark every event here, so each marks
        // session is opened.
        options.relayGrace = .seconds(120)
        try await Stack.run(options) { stack in
            let order = try await stack.purchase().orderId
            #expect(try await stack.awaitTerminal(order).status == "CONFIRMED")

            // What an operator reads to see which process holds a session or a lock.
            let expected: Set<String> = [
                "emporium-api", "emporium-api marks", "emporium-stock-worker", "emporium-stock-worker marks",
                "emporium-payment-worker", "emporium-payment-worker marks", "emporium-payment-worker ledger",
                "emporium-order-worker", "emporium-order-worker marks", "emporium-notification-worker",
            ]
            var seen: Set<String> = []
            let named = try await TestEnvironment.eventually {
                let rows = try await stack.db.query("SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database()")
                seen = Set(try rows.map { try $0.decode(String.self, "application_name") })
                return expected.isSubset(of: seen)
            }
            #expect(named, "missing \(expected.subtracting(seen).sorted()); seen \(seen.sorted())")
        }
    }

    @Test("one trace id from the HTTP request through the API and all four workers, onto the dead letter and its replay")
    func traceThroughTheQueue() async throws {
        try await Stack.apiOnly { stack in
            let api = try await APIProcess(stack: stack, extraEnvironment: ["LOG_LEVEL": "info"])
            // Per-message lines are at debug (info keeps one line per order status change).
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: ["LOG_LEVEL": "debug", "LOG_FORMAT": "json"])
            for role in WorkerRole.allCases { try workers.start(role) }
            let admin = try await stack.admin()
            let productId = try await stack.product(admin, stock: 10)
            let (_, token) = try await stack.customer()

            func place(trace: String) async throws -> UUID {
                try await stack.addToCart(token, productId, quantity: 1)
                let placed = try await api.request(
                    "POST", "/api/v1/orders", json: Stack.orderBody(),
                    headers: [
                        "Authorization": "Bearer \(token)", "Idempotency-Key": UUID().uuidString, "traceparent": "00-\(trace)-00f067aa0ba902b7-01",
                    ])
                #expect(placed.status == 201, "\(placed.body)")
                return try #require(uuid(jsonLogLine(placed.body)?["id"]))
            }
            func lines(_ lines: [String], trace: String, order: UUID) -> [[String: Any]] {
                lines.compactMap(jsonLogLine).filter { $0["trace.id"] as? String == trace && $0["order.id"] as? String == order.uuidString }
            }

            let trace = (0..<32).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
            let orderId = try await place(trace: trace)
            #expect(try await stack.awaitTerminal(orderId, timeout: .seconds(60)).status == "CONFIRMED")
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(30)) {
                    WorkerRole.allCases.allSatisfy { !lines(workers.logLines($0), trace: trace, order: orderId).isEmpty }
                }, "every worker logs the order under the request's trace id")
            #expect(lines(api.logLines, trace: trace, order: orderId).contains { $0["msg"] as? String == "order placed" })
            // The order worker's info lines: one per status change, under the same trace.
            let changes = lines(workers.logLines(.order), trace: trace, order: orderId).filter { $0["msg"] as? String == "order status changed" }
            #expect(changes.compactMap { $0["order.status"] as? String } == ["AWAITING_PAYMENT", "CONFIRMED"], "\(changes)")
            #expect(changes.allSatisfy { $0["level"] as? String == "info" }, "\(changes)")
            for role in WorkerRole.allCases {
                // Every line a worker wrote is one JSON object.
                #expect(
                    workers.logLines(role).allSatisfy { jsonLogLine($0) != nil },
                    "\(role): \(workers.logLines(role).filter { jsonLogLine($0) == nil }.prefix(3))")
                let handled = lines(workers.logLines(role), trace: trace, order: orderId)
                #expect(
                    handled.allSatisfy { ($0["message.id"] as? String)?.isEmpty == false && ($0["amqp.queue"] as? String) == stack.names.queue(role) },
                    "\(role): \(handled)")
            }

            // A payment that keeps failing is dead-lettered with its trace; the replay continues it.
            try await FakeProviderLedger(pool: stack.db).setOutage(true)
            let failing = (0..<32).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
            let stuck = try await place(trace: failing)
            var filter = DeadLetterFilter()
            filter.orderId = stuck.uuidString
            let letters = DeadLetters(amqp: stack.amqp, names: stack.names)
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await letters.list(filter).count) == 1 })
            let letter = try #require(try await letters.list(filter).first)
            #expect(letter.headers["traceparent"]?.contains(failing) == true, "\(letter.headers)")
            #expect(letter.body.contains(failing))
            #expect(lines(workers.logLines(.payment), trace: failing, order: stuck).contains { $0["msg"] as? String == "message dead-lettered" })

            try await FakeProviderLedger(pool: stack.db).setOutage(false)
            let replay = try CLI(stack: stack).run("dlq", "replay", "--order", stuck.uuidString)
            #expect(replay.status == 0, "\(replay.stderr)")
            #expect(try await stack.awaitTerminal(stuck, timeout: .seconds(60)).status == "CONFIRMED")
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(20)) {
                    lines(workers.logLines(.payment), trace: failing, order: stuck).contains {
                        $0["msg"] as? String == "event handled" && $0["replay.count"] as? String == "1"
                    }
                }, "the replay is handled under the original trace, marked as a replay")
            workers.stopAll()
            api.stop()
        }
    }

    @Test("with an OTLP endpoint, the API and all four workers export spans of the request's trace")
    func spansExported() async throws {
        let receiver = try OTLPReceiver()
        defer { receiver.close() }
        let otel = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(receiver.port)", "OTEL_BSP_SCHEDULE_DELAY": "200"]
        try await Stack.apiOnly { stack in
            let api = try await APIProcess(stack: stack, extraEnvironment: otel.merging(["LOG_LEVEL": "warning"]) { $1 })
            let workers = try WorkerProcesses(stack: stack, providerLatencyMS: 0, extraEnvironment: otel)
            for role in WorkerRole.allCases { try workers.start(role) }
            let (_, _, (_, token)) = try await stack.filledCart(stock: 10)
            let trace = (0..<32).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
            let placed = try await api.request(
                "POST", "/api/v1/orders", json: Stack.orderBody(),
                headers: [
                    "Authorization": "Bearer \(token)", "Idempotency-Key": UUID().uuidString, "traceparent": "00-\(trace)-00f067aa0ba902b7-01",
                ])
            #expect(placed.status == 201, "\(placed.body)")
            let orderId = try #require(uuid(jsonLogLine(placed.body)?["id"]))
            #expect(try await stack.awaitTerminal(orderId, timeout: .seconds(60)).status == "CONFIRMED")
            // The order carries the request span's context: same trace, the API's own span id.
            let stored = try await stack.db.query("SELECT trace_parent FROM orders WHERE id = $1", [orderId])[0].decode(String.self, "trace_parent")
            #expect(traceID(ofTraceparent: stored) == trace)
            #expect(!stored.contains("00f067aa0ba902b7"))

            let traceBytes: [UInt8] = stride(from: 0, to: 32, by: 2).map {
                UInt8(trace[trace.index(trace.startIndex, offsetBy: $0)..<trace.index(trace.startIndex, offsetBy: $0 + 2)], radix: 16)!
            }
            let services = ["emporium-api"] + WorkerRole.allCases.map { "emporium-\($0.rawValue)-worker" }
            func exported(_ service: String) -> Bool {
                receiver.traceBodies.contains { $0.contains(bytes: Array(service.utf8)) && $0.contains(bytes: traceBytes) }
            }
            #expect(
                await TestEnvironment.eventually(timeout: .seconds(30)) { services.allSatisfy(exported) },
                "spans of trace \(trace) from: \(services.filter(exported))")
            #expect(receiver.traceBodies.contains { $0.contains(bytes: Array("order.placed process".utf8)) && $0.contains(bytes: traceBytes) })
            workers.stopAll()
            api.stop()
        }
    }
}
