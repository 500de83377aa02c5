import AsyncHTTPClient
import Domain
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import Postgres
import Store
import Synchronization
import Units

/// `emporium bench`: a load generator for order placement over HTTP.
///
/// Open loop (default): orders arrive at a constant `rate` for `duration`, whatever the
/// responses do, and each latency is measured from the order's scheduled arrival, so a slow
/// response cannot hide the queueing behind it. Closed loop (`maxConcurrency`): that many
/// clients place orders back to back, to find the peak. Then it waits until every order is
/// terminal and reports placed → confirmed latencies and end-to-end throughput from the
/// database.
package struct Bench: Sendable {
    /// What to run.
    package struct Options: Sendable {
        package var baseURL = "http://127.0.0.1:8080"
        /// Offered orders per second (open loop).
        package var rate = 50.0
        package var duration: Duration = .seconds(10)
        /// Closed loop with this many clients instead of a rate.
        package var maxConcurrency: Int?
        /// Customers placing the orders (each holds one order in flight at a time).
        package var customers = 50
        /// Lines per order, each a different product.
        package var lines = 3
        /// Products the lines are drawn from (a real catalog spreads stock updates over rows).
        package var products = 100
        /// How long to wait for every order to become terminal (zero: report without waiting).
        package var settleTimeout: Duration = .seconds(120)
        /// Fill each cart over the API (`POST /api/v1/cart/items`, one request per line), as a
        /// shopper's browser does, instead of with one SQL statement: placement then measures
        /// what a whole purchase costs, comparable with shops whose bench adds to a basket.
        package var cartOverAPI = false
        package var adminEmail = ""
        package var adminPassword = ""
        package init() {}
    }

    /// Latency percentiles, in milliseconds.
    package struct Percentiles: Sendable, Encodable {
        package let p50, p90, p99, p999, max: Double
        package let count: Int
    }

    /// What a run measured.
    package struct Report: Sendable, Encodable {
        package var mode = ""
        package var offeredRate: Double?
        package var concurrency: Int?
        package var durationSeconds = 0.0
        package var placed = 0
        package var errors = 0
        /// Failed placements by HTTP status (`429`: the API's per-client rate limit; raise
        /// `RATE_LIMIT_PER_SECOND` on the API under test) or `network`.
        package var errorsByStatus: [String: Int] = [:]
        /// Arrivals with no idle customer to place them (the generator, not the API, was short).
        package var dropped = 0
        package var placementThroughput = 0.0
        package var placementLatencyMs: Percentiles?
        package var terminal = 0
        package var confirmed = 0
        package var cancelled = 0
        package var notTerminal = 0
        package var endToEndThroughput = 0.0
        package var confirmLatencyMs: Percentiles?
    }

    /// A failure meant for the operator.
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
        /// The HTTP status that caused it, if any.
        package var status: Int?
        /// The answer's `Retry-After`, in seconds, if it had one.
        package var retryAfter: Int?

        init(description: String, status: Int?) {
            self.description = description
            self.status = status
        }
    }

    let options: Options
    let pool: PostgresPool

    /// Creates the bench against the API at `options.baseURL`; `pool` reads the outcomes.
    package init(options: Options, pool: PostgresPool) {
        self.options = options
        self.pool = pool
    }

    /// Prepares data, runs the load, waits for the outcomes, reports.
    package func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(60)))
        // One connection per customer, so no request waits in the client for a connection
        // (the default pool of 8 would cap the offered load and add its own queueing).
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(options.customers, options.maxConcurrency ?? 0))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let report = try await measure(client, progress: progress)
            try await client.shutdown()
            return report
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func measure(_ client: HTTPClient, progress: @Sendable (String) -> Void) async throws -> Report {
        let api = API(client: client, baseURL: options.baseURL)
        let admin = try await api.login(options.adminEmail, options.adminPassword)
        let run = UUID().uuidString.prefix(8)
        progress("bench: preparing \(options.products) products and \(options.customers) customers")
        let products = try await withThrowingTaskGroup(of: UUID.self) { group in
            for index in 0..<options.products {
                group.addTask {
                    let sku = "BENCH-\(run)-\(index)"
                    let product = try await api.json(
                        "POST", "/api/v1/products", token: admin,
                        body: [
                            "name": "Bench item \(sku)", "sku": sku, "price_cents": 1_000, "currency": "EUR", "stock": 100_000_000,
                        ], expect: 201)
                    guard let id = (product["id"] as? String).flatMap(UUID.init(uuidString:)) else {
                        throw Failure(description: "the API did not return the bench product's id", status: nil)
                    }
                    return id
                }
            }
            return try await group.reduce(into: [UUID]()) { $0.append($1) }
        }
        let customers = try await withThrowingTaskGroup(of: Customer.self) { group in
            for index in 0..<options.customers {
                group.addTask {
                    let email = "bench-\(index)-\(run.lowercased())@example.com"
                    _ = try await api.json(
                        "POST", "/api/v1/auth/register", body: ["email": email, "password": "bench passphrase", "first_name": "Bench", "last_name": "User"],
                        expect: 201, retryBusy: true)
                    let token = try await api.login(email, "bench passphrase")
                    let cart = try await api.json("GET", "/api/v1/cart", token: token, expect: 200)
                    guard let cartId = (cart["id"] as? String).flatMap(UUID.init(uuidString:)) else {
                        throw Failure(description: "the API did not return the customer's cart id", status: nil)
                    }
                    let userId = try await pool.query("SELECT user_id FROM carts WHERE id = $1", [cartId])[0].decode(UUID.self, "user_id")
                    let customer = Customer(token: token, cartId: cartId, userId: userId)
                    try await fillCart(customer, from: products, api: api)
                    return customer
                }
            }
            return try await group.reduce(into: [Customer]()) { $0.append($1) }
        }
        let idle = Locked(customers)
        let state = Locked(Measured())

        /// One order by `customer`: place, then fill the cart again for the next one.
        @Sendable func order(_ customer: Customer, scheduled: ContinuousClock.Instant) async {
            do {
                let placedId = try await api.placeOrder(token: customer.token)
                let elapsed = ContinuousClock.now - scheduled
                state.withLock { state in
                    _ = state.latencies.record(UInt64(max(0, elapsed.wholeMicroseconds)))
                    if let placedId { state.placed.append(placedId) }
                }
            } catch {
                let key = (error as? Failure)?.status.map(String.init) ?? "network"
                state.withLock { state in
                    state.errors += 1
                    state.errorsByStatus[key, default: 0] += 1
                }
            }
            // The next order needs a full cart; a failure here shows as that order's error.
            try? await fillCart(customer, from: products, api: api)
        }

        var report = Report()
        let loadStarted = try await pool.query("SELECT now() AS now")[0].decode(Date.self, "now")
        let start = ContinuousClock.now
        if let concurrency = options.maxConcurrency {
            report.mode = "closed loop"
            report.concurrency = concurrency
            progress("bench: \(concurrency) clients back to back for \(options.duration)")
            await withDiscardingTaskGroup { group in
                for client in 0..<concurrency {
                    let mine = stride(from: client, to: customers.count, by: concurrency).map { customers[$0] }
                    guard !mine.isEmpty else { continue }
                    group.addTask {
                        var turn = 0
                        while ContinuousClock.now - start < options.duration {
                            await order(mine[turn % mine.count], scheduled: .now)
                            turn += 1
                        }
                    }
                }
            }
        } else {
            report.mode = "open loop"
            report.offeredRate = options.rate
            let arrivals = Int((options.rate * options.duration.secondsWithFraction).rounded())
            progress("bench: \(arrivals) orders at \(options.rate)/s for \(options.duration)")
            await withDiscardingTaskGroup { group in
                for index in 0..<arrivals {
                    let scheduled = start + .nanoseconds(Int64(Double(index) / options.rate * 1e9))
                    try? await Task.sleep(until: scheduled, clock: .continuous)
                    guard let customer = idle.withLock({ $0.popLast() }) else {
                        state.withLock { $0.dropped += 1 }
                        continue
                    }
                    group.addTask {
                        await order(customer, scheduled: scheduled)
                        idle.withLock { $0.append(customer) }
                    }
                }
            }
        }
        let elapsed = ContinuousClock.now - start
        report.durationSeconds = elapsed.secondsWithFraction
        let measured = state.withLock { $0 }
        report.placed = measured.placed.count
        report.errors = measured.errors
        report.errorsByStatus = measured.errorsByStatus
        report.dropped = measured.dropped
        report.placementThroughput = Double(report.placed) / report.durationSeconds
        report.placementLatencyMs = Self.percentiles(measured.latencies)

        progress("bench: waiting for \(report.placed) orders to finish")
        let ids = measured.placed.compactMap { UUID(uuidString: $0) }
        let deadline = ContinuousClock.now + options.settleTimeout
        // Polled by customer, not by order (tens of thousands of ids), and for whether any order
        // is open rather than how many: the scan stops at the first open order, whatever the plan,
        // so only the last poll reads every order of the run. Counting read them all twice a
        // second, on the server that is finishing them (0.17 ms of server time per order in the
        // run of 2026-12-05 12:32).
        let customerIds = customers.map(\.userId)
        while options.settleTimeout > .zero {
            let anyOpen = try await pool.query(
                """
                SELECT EXISTS (SELECT 1 FROM orders WHERE user_id = ANY($1) AND created_at >= $2 AND status NOT IN ('CONFIRMED', 'CANCELLED')) AS open
                """, [customerIds, loadStarted])[0].decode(Bool.self, "open")
            if !anyOpen || ContinuousClock.now > deadline { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        let outcome = try await pool.query(
            """
            SELECT count(*) FILTER (WHERE status = 'CONFIRMED') AS confirmed, count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled,
                   count(*) FILTER (WHERE status NOT IN ('CONFIRMED', 'CANCELLED')) AS open
            FROM orders WHERE id = ANY($1)
            """, [ids])[0]
        report.confirmed = try outcome.decode(Int.self, "confirmed")
        report.cancelled = try outcome.decode(Int.self, "cancelled")
        report.notTerminal = try outcome.decode(Int.self, "open")
        report.terminal = report.confirmed + report.cancelled
        var confirmLatencies = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        let rows = try await pool.query(
            """
            SELECT (extract(epoch FROM h.changed_at - o.created_at) * 1e6)::int8 AS micros, o.created_at, h.changed_at
            FROM orders o JOIN order_status_history h ON h.order_id = o.id AND h.to_status = 'CONFIRMED' WHERE o.id = ANY($1)
            """, [ids])
        var first: Date?, last: Date?
        for row in rows {
            _ = confirmLatencies.record(UInt64(max(0, try row.decode(Int.self, "micros"))))
            let created = try row.decode(Date.self, "created_at"), changed = try row.decode(Date.self, "changed_at")
            first = min(first ?? created, created)
            last = max(last ?? changed, changed)
        }
        report.confirmLatencyMs = Self.percentiles(confirmLatencies)
        if let first, let last, last > first { report.endToEndThroughput = Double(rows.count) / last.timeIntervalSince(first) }
        return report
    }

    /// A signed-in bench customer and its cart.
    struct Customer: Sendable {
        let token: String
        let cartId: UUID
        let userId: UUID
    }

    /// Puts `options.lines` distinct products, one each, in the customer's cart. By default it
    /// writes the rows directly, as `POST /cart/items` would, so that the load the API measures
    /// is order placement alone rather than placement plus three cart requests per order; with
    /// `cartOverAPI` it sends those requests.
    func fillCart(_ customer: Customer, from products: [UUID], api: API) async throws {
        // Drawn one at a time: shuffling the whole catalogue drew a random number per product,
        // each a getrandom(2) call (12% of the load generator's CPU in the profile of 2026-12-06).
        var chosen: [UUID] = []
        while chosen.count < min(options.lines, products.count) {
            let product = products[Int.random(in: 0..<products.count)]
            if !chosen.contains(product) { chosen.append(product) }
        }
        guard options.cartOverAPI else {
            try await CartStore(expiry: .seconds(3_600)).refill(customer.cartId, with: chosen, on: pool)
            return
        }
        for product in chosen {
            _ = try await api.json(
                "POST", "/api/v1/cart/items", token: customer.token, body: ["product_id": product.uuidString.lowercased(), "quantity": 1], expect: 201)
        }
    }

    /// What the load phase collects.
    struct Measured: Sendable {
        var latencies = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var placed: [String] = []
        var errors = 0
        var errorsByStatus: [String: Int] = [:]
        var dropped = 0
    }

    /// Shared mutable state for the load tasks.
    final class Locked<Value: Sendable>: Sendable {
        private let mutex: Mutex<Value>
        init(_ value: Value) { mutex = Mutex(value) }
        func withLock<T>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
    }

    static func percentiles(_ histogram: Histogram<UInt64>) -> Percentiles? {
        guard histogram.totalCount > 0 else { return nil }
        func ms(_ micros: UInt64) -> Double { (Double(micros) / 10).rounded() / 100 }
        return Percentiles(
            p50: ms(histogram.valueAtPercentile(50)), p90: ms(histogram.valueAtPercentile(90)), p99: ms(histogram.valueAtPercentile(99)),
            p999: ms(histogram.valueAtPercentile(99.9)), max: ms(histogram.maxRecorded), count: Int(histogram.totalCount))
    }

    /// The few calls the bench makes, JSON in and out.
    struct API: Sendable {
        let client: HTTPClient
        let baseURL: String

        func login(_ email: String, _ password: String) async throws -> String {
            let body = try await json("POST", "/api/v1/auth/login", body: ["email": email, "password": password], expect: 200, retryBusy: true)
            guard let token = body["access_token"] as? String else { throw Failure(description: "sign-in as \(email) returned no token", status: nil) }
            return token
        }

        /// One call; with `retryBusy` (setup, not measured), a 503 or 429 is tried again after
        /// its `Retry-After`, for a minute, as a polite client does. A `Retry-After` past that
        /// minute (a sign-in throttle's 900 s) is not waited out: the call fails at once, so a
        /// misconfigured run ends with the API's answer instead of hanging.
        func json(
            _ method: String, _ path: String, token: String? = nil, body: [String: Any]? = nil, headers: [String: String] = [:], expect: Int,
            retryBusy: Bool = false
        ) async throws -> [String: Any] {
            let deadline = ContinuousClock.now + .seconds(60)
            while true {
                do {
                    return try await once(method, path, token: token, body: body, headers: headers, expect: expect)
                } catch let failure as Failure
                    where retryBusy && [429, 503].contains(failure.status ?? 0)
                    && ContinuousClock.now + .seconds(failure.retryAfter ?? 1) < deadline
                {
                    try await Task.sleep(for: .seconds(failure.retryAfter ?? 1))
                }
            }
        }

        /// The bench's order, the same for every placement, so it is encoded once.
        private static let orderBody = Array(
            #"{"payment_method":"tok_visa","shipping_address":{"city":"Berlin","country":"DE","line1":"1 Bench Street","postal_code":"10115"}}"#.utf8)

        /// Places the customer's cart under a fresh idempotency key; the order's id. The body is
        /// written once and only the id is read back: `JSONSerialization` both ways was 13% of
        /// the load generator's CPU per order (profile of 2026-12-06).
        func placeOrder(token: String) async throws -> String? {
            let answer = try await send(
                "POST", "/api/v1/orders", token: token, body: Self.orderBody, headers: ["Idempotency-Key": UUID.random().uuidString], expect: 201)
            guard case .object(let order)? = try? JSONValue(parsing: answer), case .string(let id)? = order["id"] else { return nil }
            return id
        }

        private func once(_ method: String, _ path: String, token: String?, body: [String: Any]?, headers: [String: String], expect: Int) async throws
            -> [String: Any]
        {
            let bytes = try await send(
                method, path, token: token, body: try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) }, headers: headers, expect: expect)
            return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
        }

        /// One request with `body` (JSON bytes), the answer's body if its status is `expect`.
        private func send(_ method: String, _ path: String, token: String?, body: [UInt8]?, headers: [String: String], expect: Int) async throws
            -> [UInt8]
        {
            var request = HTTPClientRequest(url: baseURL + path)
            request.method = HTTPMethod(rawValue: method)
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            let response = try await client.execute(request, timeout: .seconds(60))
            let bytes = try await response.body.collect(upTo: 1 << 20)
            guard Int(response.status.code) == expect else {
                var failure = Failure(
                    description: "\(method) \(path) answered \(response.status.code): \(String(buffer: bytes).prefix(300))", status: Int(response.status.code))
                failure.retryAfter = response.headers.first(name: "Retry-After").flatMap(Int.init)
                throw failure
            }
            return Array(bytes.readableBytesView)
        }
    }
}
