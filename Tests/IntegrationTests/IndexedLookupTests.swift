import Foundation
import Messaging
import Postgres
import Store
import TestSupport
import Testing

/// Look-ups by a column that is not a key stay index scans as their tables grow. On tables of
/// a few thousand rows, analysed, the planner already prefers any usable index to a
/// sequential scan, so a look-up that scans here has no index to use and would read its
/// whole table at every size. Each look-up runs through its store in a transaction whose own
/// counters (`pg_stat_xact_user_tables`) say how it read the table.
@Suite("Look-ups stay indexed as tables grow", .timeLimit(.minutes(3)))
struct IndexedLookupTests {
    /// Orders, each with a payment, a notification and a refund.
    static let orders = 3_000

    @Test(
        "a payment by its provider reference, the last day's payments, an order's notifications and refunds, the console's orders per minute and its orders list are read through indexes"
    )
    func lookupsUseIndexes() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 1)
            try await Self.fill(pool)
            let target = try await pool.query("SELECT id FROM orders WHERE order_number = 'GROW-1234'")[0].decode(UUID.self, "id")

            // The payment worker's look-up for a provider event that names only the PaymentIntent.
            let (orderId, paymentScans) = try await Self.scans(of: "payments", on: pool) { db in
                try await PaymentStore().orderId(ofReference: "pi_GROW-1234", on: db)
            }
            #expect(orderId == target)
            #expect(paymentScans.sequential == 0, "payments read by a sequential scan to find a provider reference")
            #expect(paymentScans.index >= 1)

            // The payment worker's reconciliation sweep: the last day's charges, oldest first.
            let (recent, recentScans) = try await Self.scans(of: "payments", on: pool) { db in
                try await PaymentStore().capturedSince(Date().addingTimeInterval(-86_400), provider: "fake", limit: 500, on: db)
            }
            #expect(recent.count == 23, "one order an hour, the newest an hour old")
            #expect(recentScans.sequential == 0, "payments read by a sequential scan to find the last day's")
            #expect(recentScans.index >= 1)

            // The console's order page: the order's notifications (and the rest of its facts).
            let (facts, notificationScans) = try await Self.scans(of: "notifications", on: pool) { db in
                try await ConsoleQueries().facts(of: target, on: db)
            }
            #expect(facts?.notifications.count == 1)
            #expect(notificationScans.sequential == 0, "notifications read by a sequential scan to list an order's")
            #expect(notificationScans.index >= 1)

            // The order pages of the API, the storefront and the console: the order's refunds.
            let (refunds, refundScans) = try await Self.scans(of: "refunds", on: pool) { db in
                try await PaymentStore().refunds(ofOrder: target, on: db)
            }
            #expect(refunds.map(\.amountCents) == [100])
            #expect(refundScans.sequential == 0, "refunds read by a sequential scan to list an order's")
            #expect(refundScans.index >= 1)

            // The console's overview, every few seconds while it is open: the last hour's
            // orders per minute, one order a minute (59 of them, 58 if a minute turned since).
            let (perMinute, minuteScans) = try await Self.scans(of: "orders", on: pool) { db in
                try await ConsoleQueries().ordersPerMinute(minutes: 60, on: db)
            }
            #expect(perMinute.count == 60)
            #expect((58...59).contains(perMinute.reduce(0, +)))
            #expect(perMinute.allSatisfy { $0 <= 1 })
            #expect(minuteScans.sequential == 0, "orders read by a sequential scan to count the last hour's")
            #expect(minuteScans.index >= 1)
            // The index returns the hour's orders and a neighbour or two; the whole table is 3,000.
            #expect(minuteScans.read <= 120, "\(minuteScans.read) orders read to count the last hour's 59")

            // The console's orders list, re-read whenever an order event arrives: the newest
            // page, and a count that stops past a bound instead of reading every order.
            let (newest, listScans) = try await Self.scans(of: "orders", on: pool) { db in
                try await Self.orderList(ConsoleQueries.OrderFilter(), on: db)
            }
            #expect(newest.rows.map(\.orderNumber) == (1...20).map { "GROW-\($0)" })
            #expect(newest.total == ConsoleQueries.orderCountLimit && newest.more)
            // Read twice (the page, then its fragments): each time at most the page and the bound.
            #expect(
                listScans.read <= 2 * (20 + ConsoleQueries.orderCountLimit + 1),
                "\(listScans.read) orders read twice for a page of 20 of \(Self.orders)")
            var byNumber = ConsoleQueries.OrderFilter()
            byNumber.orderNumber = "GROW-1234"
            let oneNumber = byNumber
            let (found, _) = try await Self.scans(of: "orders", on: pool) { db in
                try await Self.orderList(oneNumber, on: db)
            }
            #expect(found.rows.map(\.id) == [target] && found.total == 1 && !found.more)
            await pool.close()
        }
    }

    /// Events waiting in the outbox for ``outboxMarksReadTheirOwnRows()``: a broker outage's
    /// backlog, written after the table was last analysed.
    static let waitingEvents = 3_000

    @Test(
        "a mark of published events reads its own rows, however many events wait that the statistics have not seen, and the reconciler still finds an order's waiting events through an index"
    )
    func outboxMarksReadTheirOwnRows() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 1)
            // Published events, analysed as autovacuum would have: the statistics say that
            // almost nothing waits. Then the backlog, which they have not seen.
            try await pool.query(
                """
                INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload, created_at, published_at)
                SELECT gen_random_uuid(), 'order.placed', 'emporium.events', 'order.placed', gen_random_uuid(), '{}', now() - interval '1 hour', now()
                FROM generate_series(1, 3000)
                """)
            try await pool.query("ANALYZE outbox")
            try await pool.query(
                """
                INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload)
                SELECT gen_random_uuid(), 'order.placed', 'emporium.events', 'order.placed', gen_random_uuid(), '{}' FROM generate_series(1, $1::int)
                """, [Self.waitingEvents])
            let waiting = try await pool.query("SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id").map { try $0.decode(UUID.self, "id") }
            #expect(waiting.count == Self.waitingEvents)
            // A session plans a prepared statement for its parameters five times, then may
            // keep one plan for all: the mark is measured after that, a batch of 50 as the relay's.
            for round in 0..<6 {
                let ids = Array(waiting[(round * 50)..<((round + 1) * 50)])
                try await pool.withConnection { try await OutboxStore.markPublished(ids, on: $0) }
            }
            let batch = Array(waiting[300..<350])
            let (_, reads) = try await Self.scans(of: "outbox", on: pool) { db in try await OutboxStore.markPublished(batch, on: db) }
            // Each id once through the primary key to lock it and once to update it. Through the
            // index of unpublished events (before migration 0017) every waiting row was read.
            #expect(reads.sequential == 0)
            #expect(reads.read <= 4 * batch.count, "\(reads.read) outbox rows read to mark \(batch.count) of \(Self.waitingEvents) waiting")
            let marked = try await pool.query(
                "SELECT count(*) FILTER (WHERE id = ANY($1) AND published_at IS NOT NULL) AS marked, count(*) FILTER (WHERE published_at IS NULL) AS waiting FROM outbox",
                [batch])[0]
            #expect(try marked.decode(Int.self, "marked") == batch.count)
            #expect(try marked.decode(Int.self, "waiting") == Self.waitingEvents - 350)

            // The relay's backlog count (every 15 s in each process, and the operator's status)
            // reads the waiting and parked rows through their indexes, not the published ones.
            try await pool.query("UPDATE outbox SET parked_at = now() WHERE id = ANY($1)", [Array(waiting[350..<360])])
            let (backlog, backlogReads) = try await Self.scans(of: "outbox", on: pool) { db in try await OutboxStore.backlog(on: db) }
            #expect(backlog.unpublished == Self.waitingEvents - 360 && backlog.parked == 10)
            #expect(backlog.oldestSeconds.map { $0 >= 0 } == true)
            #expect(backlogReads.sequential == 0, "the outbox read by a sequential scan to count its backlog")
            #expect(
                backlogReads.read <= 2 * Self.waitingEvents, "\(backlogReads.read) outbox rows read to count \(Self.waitingEvents - 350) unpublished")

            // The reconciler leaves alone a stalled order whose event still waits, found by order.
            let user = UUID()
            try await pool.query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name) VALUES ($1, 'outbox@example.com', 'x', 'O', 'B')", [user])
            let (held, stalled) = (UUID(), UUID())
            try await pool.query(
                """
                INSERT INTO orders (id, order_number, user_id, status, payment_method, shipping_address, subtotal_cents, total_cents, currency, updated_at)
                SELECT id, 'OUTBOX-' || n, $3, 'PENDING', 'tok_visa', '{}', 1000, 1000, 'EUR', now() - interval '10 minutes'
                FROM unnest(ARRAY[$1::uuid, $2::uuid]) WITH ORDINALITY AS o(id, n)
                """, [held, stalled, user])
            try await pool.query(
                "INSERT INTO outbox (id, event_type, exchange, routing_key, order_id, payload) VALUES (gen_random_uuid(), 'order.placed', 'emporium.events', 'order.placed', $1, '{}')",
                [held])
            let (found, reconcilerReads) = try await Self.scans(of: "outbox", on: pool) { db in
                try await SagaStore().stalled(stall: .seconds(60), lookback: .seconds(3_600), maxRedrives: 5, limit: 10, on: db)
            }
            #expect(found.map(\.orderId) == [stalled])
            #expect(reconcilerReads.sequential == 0, "the outbox read by a sequential scan to find an order's waiting events")
            #expect(reconcilerReads.index >= 1)
            await pool.close()
        }
    }

    /// Active products of the catalog grown for ``catalogPagesUseIndexes()``: what a sort of
    /// all of them gives, worked out here rather than by the database.
    struct Listed {
        let id: String
        let name: String
        let priceCents: Int
        let createdAt: Date
        let rating: Double
        let inStock: Bool
    }

    @Test(
        "every sort of the catalog reads about a page of products, not every product, and the storefront home page reads only its 8"
    )
    func catalogPagesUseIndexes() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 1)
            try await Self.fillCatalog(pool)
            let active = try await pool.query(
                """
                SELECT id::text AS id, name, price_cents, created_at, stock,
                       CASE WHEN rating_count = 0 THEN 0 ELSE rating_sum::float8 / rating_count END AS rating
                FROM products WHERE is_active
                """
            ).map {
                Listed(
                    id: try $0.decode(String.self, "id"), name: try $0.decode(String.self, "name"), priceCents: try $0.decode(Int.self, "price_cents"),
                    createdAt: try $0.decode(Date.self, "created_at"), rating: try $0.decode(Double.self, "rating"),
                    inStock: try $0.decode(Int.self, "stock") > 0)
            }
            #expect(active.count == Self.products - Self.products / 20)
            // Ties (equal prices, equal ratings) go by id; the ids' text sorts as the uuids do.
            let newest: (Listed, Listed) -> Bool = { $0.createdAt != $1.createdAt ? $0.createdAt > $1.createdAt : $0.id < $1.id }
            let expected: [String: (Listed, Listed) -> Bool] = [
                "newest": newest,
                "relevance": newest,  // without a text every product ranks the same
                "name": { $0.name != $1.name ? $0.name < $1.name : $0.id < $1.id },
                "price_asc": { $0.priceCents != $1.priceCents ? $0.priceCents < $1.priceCents : $0.id < $1.id },
                "price_desc": { $0.priceCents != $1.priceCents ? $0.priceCents > $1.priceCents : $0.id > $1.id },
                "rating": { $0.rating != $1.rating ? $0.rating > $1.rating : $0.id < $1.id },
            ]
            #expect(Set(expected.keys) == Set(CatalogStore.sorts.keys), "a sort without a check here")
            for (sort, precedes) in expected.sorted(by: { $0.key < $1.key }) {
                for offset in [0, 480] {
                    let search = CatalogStore.Search(text: nil, minPrice: nil, maxPrice: nil, inStock: nil, category: nil, sort: sort)
                    // A session plans a prepared statement for its parameters five times, then
                    // may keep one plan for all: what a page reads is measured after that.
                    for _ in 1...6 { _ = try await pool.withConnection { try await CatalogStore().search(search, size: 24, offset: offset, on: $0) } }
                    let (found, reads) = try await Self.scans(of: "products", on: pool) { db in
                        try await CatalogStore().search(search, size: 24, offset: offset, on: db)
                    }
                    let want = active.sorted(by: precedes).dropFirst(offset).prefix(24).map(\.id)
                    #expect(found.products.map { $0.id.uuidString.lowercased() } == Array(want), "sort \(sort), offset \(offset)")
                    #expect(found.total == active.count)
                    // The count reads each product once at most; a page that sorted every
                    // product would read them all again.
                    #expect(
                        reads.read <= Self.products + offset + 100,
                        "sort \(sort), offset \(offset): \(reads.read) product rows read for a page of 24 of \(active.count)")
                }
            }
            let (home, homeReads) = try await Self.scans(of: "products", on: pool) { db in
                try await CatalogStore().newestInStock(limit: 8, on: db)
            }
            #expect(home.map { $0.id.uuidString.lowercased() } == active.filter(\.inStock).sorted(by: newest).prefix(8).map(\.id))
            #expect(homeReads.sequential == 0 && homeReads.read <= 20, "\(homeReads.read) product rows read for the home page's 8")
            await pool.close()
        }
    }

    /// Products in the catalog of ``catalogPagesUseIndexes()``.
    static let products = 3_000

    /// `products` products, one created a minute going back from now: every 20th inactive,
    /// every 7th out of stock, names unique, prices and ratings with ties; then analysed.
    static func fillCatalog(_ pool: PostgresPool) async throws {
        try await pool.query(
            """
            INSERT INTO products (id, sku, name, description, price_cents, currency, stock, is_active, created_at, rating_count, rating_sum)
            SELECT gen_random_uuid(), 'GROW-' || i, 'Product ' || lpad(((i * 7919) % $1)::text, 5, '0'), 'A product', 100 + (i * 104729) % 500,
                   'EUR', CASE WHEN i % 7 = 0 THEN 0 ELSE 5 END, i % 20 <> 0, now() - make_interval(mins => i), i % 4, (i % 4) * (1 + i % 5)
            FROM generate_series(1, $1::int) AS i
            """, [products])
        try await pool.query("ANALYZE products")
    }

    /// The console orders list's first page of 20 and its count, as the page reads them, and
    /// as its live fragments read them apart: both ways must agree.
    static func orderList(
        _ filter: ConsoleQueries.OrderFilter, on db: PostgresConnection
    ) async throws -> (rows: [ConsoleQueries.OrderRow], total: Int, more: Bool) {
        let page = try await ConsoleQueries().orderPage(filter, size: 20, offset: 0, on: db)
        let rows = try await ConsoleQueries().orderRows(filter, size: 20, offset: 0, on: db)
        let count = try await ConsoleQueries().orderCount(filter, offset: 0, on: db)
        #expect(page.rows.map(\.id) == rows.map(\.id) && page.total == count.total && page.more == count.more)
        return page
    }

    /// Runs `body` in a transaction and returns what it returned with how many sequential and
    /// index scans of `table` it started. The session's counters not yet sent to the
    /// statistics (`pg_stat_xact_user_tables`) may hold earlier transactions' too, and none are
    /// sent while a transaction is open, so the difference across `body` is exactly its own.
    static func scans<T: Sendable>(
        of table: String, on pool: PostgresPool, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> (T, (sequential: Int, index: Int, read: Int)) {
        try await pool.withTransaction { db in
            func counters() async throws -> (Int, Int, Int) {
                let row = try await db.query(
                    """
                    SELECT seq_scan, coalesce(idx_scan, 0) AS idx_scan, seq_tup_read + coalesce(idx_tup_fetch, 0) AS tuples
                    FROM pg_stat_xact_user_tables WHERE relname = $1
                    """, [table])[0]
                return (try row.decode(Int.self, "seq_scan"), try row.decode(Int.self, "idx_scan"), try row.decode(Int.self, "tuples"))
            }
            let before = try await counters()
            let value = try await body(db)
            let after = try await counters()
            return (value, (after.0 - before.0, after.1 - before.1, after.2 - before.2))
        }
    }

    /// One customer with `orders` orders, placed one a minute going back from a minute ago,
    /// each paid (with a provider reference) one an hour going back from an hour ago, notified
    /// and partly refunded; then analysed, as autovacuum would have.
    static func fill(_ pool: PostgresPool) async throws {
        let user = UUID()
        try await pool.query(
            "INSERT INTO users (id, email, password_hash, first_name, last_name) VALUES ($1, 'growth@example.com', 'x', 'G', 'T')", [user])
        try await pool.query(
            """
            INSERT INTO orders (id, order_number, user_id, status, payment_method, shipping_address, subtotal_cents, total_cents, currency, created_at)
            SELECT gen_random_uuid(), 'GROW-' || i, $1, 'CONFIRMED', 'tok_visa', '{}', 1000, 1000, 'EUR', now() - make_interval(mins => i)
            FROM generate_series(1, $2::int) AS i
            """, [user, orders])
        try await pool.query(
            """
            INSERT INTO payments (id, order_id, user_id, amount_cents, currency, method, status, provider, provider_reference, created_at)
            SELECT gen_random_uuid(), id, user_id, 1000, 'EUR', 'card', 'SUCCEEDED', 'fake', 'pi_' || order_number,
                   now() - make_interval(hours => substr(order_number, 6)::int) FROM orders
            """)
        try await pool.query(
            """
            INSERT INTO notifications (id, user_id, order_id, event_id, channel, template, recipient, body, status)
            SELECT gen_random_uuid(), user_id, id, gen_random_uuid(), 'email', 'order_confirmed', 'growth@example.com', 'Thanks', 'SENT' FROM orders
            """)
        try await pool.query(
            """
            INSERT INTO refunds (id, payment_id, order_id, amount_cents, currency, status)
            SELECT gen_random_uuid(), id, order_id, 100, 'EUR', 'SUCCEEDED' FROM payments
            """)
        try await pool.query("ANALYZE")
    }
}
