import Domain
import Foundation
import Messaging
import Postgres

/// Reserves stock for placed orders (all lines or none), commits it on confirmation and
/// releases it, once, on cancellation.
public struct StockHandler: EventHandler {
    public var consumerName: String { "stock" }
    /// Creates the handler.
    public init() {}

    public func handle(_ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        switch event.type {
        case EventType.orderPlaced: return try await reserve(event.payload(as: OrderPlaced.self), cause: event, db)
        case EventType.orderConfirmed: try await commit(event.payload(as: OrderOutcome.self).orderId, db)
        case EventType.orderCancelled: try await release(event.payload(as: OrderOutcome.self).orderId, db)
        default: throw PermanentFailure("stock worker does not handle \(event.type)")
        }
        return []
    }

    private func reserve(_ placed: OrderPlaced, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        // An order cancelled before its reservation must not take stock.
        let status = try await db.query("SELECT status FROM orders WHERE id = $1 FOR NO KEY UPDATE", [placed.orderId]).first
        guard let status, try status.decode(String.self, "status") == OrderStatus.pending.rawValue else { return [] }
        // Reserved before (the same order placed again by a re-drive, under a new message id):
        // the answer never reached the order worker, so give it again instead of taking stock twice.
        let held = try await db.query("SELECT count(*) AS n FROM stock_reservations WHERE order_id = $1 AND status = 'RESERVED'", [placed.orderId])[0]
        if try held.decode(Int.self, "n") > 0 {
            return [try EventEnvelope(type: EventType.stockReserved, orderId: placed.orderId,
                                      payload: StockOutcome(orderId: placed.orderId), traceparent: cause.traceparent)]
        }

        var wanted: [UUID: Int] = [:]
        for line in placed.lines { wanted[line.productId, default: 0] += line.quantity }
        // Rows are locked in one fixed order (by id), so concurrent reservations never deadlock.
        // FOR NO KEY UPDATE is what an UPDATE of `stock` takes anyway; FOR UPDATE would also
        // wait for every transaction inserting an order or cart line for these products
        // (their foreign keys hold KEY SHARE locks), which made reservations queue behind
        // checkouts under load.
        let rows = try await db.query(
            "SELECT id, stock FROM products WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE", [Array(wanted.keys)])
        var available: [UUID: Int] = [:]
        for row in rows { available[try row.decode(UUID.self, "id")] = try row.decode(Int.self, "stock") }
        for productId in wanted.keys.sorted(by: { $0.uuidString < $1.uuidString }) where (available[productId] ?? 0) < wanted[productId]! {
            return [try EventEnvelope(type: EventType.stockRejected, orderId: placed.orderId,
                                      payload: StockOutcome(orderId: placed.orderId, productId: productId), traceparent: cause.traceparent)]
        }
        for (productId, quantity) in wanted.sorted(by: { $0.key.uuidString < $1.key.uuidString }) {
            let taken = try await db.query(
                "UPDATE products SET stock = stock - $2, version = version + 1, updated_at = now() WHERE id = $1 AND stock >= $2",
                [productId, quantity])
            guard taken.affectedRows == 1 else { throw TransientFailure("stock of \(productId) changed under its lock") }
            try await db.query(
                "INSERT INTO stock_reservations (id, order_id, product_id, quantity, status) VALUES ($1, $2, $3, $4, 'RESERVED')",
                [UUID(), placed.orderId, productId, quantity])
        }
        return [try EventEnvelope(type: EventType.stockReserved, orderId: placed.orderId,
                                  payload: StockOutcome(orderId: placed.orderId), traceparent: cause.traceparent)]
    }

    private func commit(_ orderId: UUID, _ db: PostgresConnection) async throws {
        try await db.query(
            "UPDATE stock_reservations SET status = 'COMMITTED', updated_at = now() WHERE order_id = $1 AND status = 'RESERVED'",
            [orderId])
    }

    /// Releases reserved or committed stock; the conditional update makes a second release
    /// (a redelivery, a duplicate event) find nothing to give back.
    private func release(_ orderId: UUID, _ db: PostgresConnection) async throws {
        let released = try await db.query(
            """
            UPDATE stock_reservations SET status = 'RELEASED', updated_at = now()
            WHERE order_id = $1 AND status IN ('RESERVED', 'COMMITTED')
            RETURNING product_id, quantity
            """, [orderId])
        var returned: [(UUID, Int)] = []
        for row in released { returned.append((try row.decode(UUID.self, "product_id"), try row.decode(Int.self, "quantity"))) }
        for (productId, quantity) in returned.sorted(by: { $0.0.uuidString < $1.0.uuidString }) {
            try await db.query(
                "UPDATE products SET stock = stock + $2, version = version + 1, updated_at = now() WHERE id = $1",
                [productId, quantity])
        }
    }
}
