import Domain
import Foundation
import Postgres

/// Stock reservations: `stock_reservations`, one row per order line reserved. The stock
/// levels themselves are the catalog's (``CatalogStore/takeStock(_:on:)``).
package struct StockStore: Sendable {
    /// Creates the store.
    package init() {}

    /// Whether the order already holds reserved stock (a redelivery or a re-drive of its placement).
    package func hasReservation(_ orderId: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query("SELECT count(*) AS n FROM stock_reservations WHERE order_id = $1 AND status = 'RESERVED'", [orderId])[0].decode(Int.self, "n") > 0
    }

    /// Records, in one statement, that each line's quantity is reserved for the order (inside
    /// a transaction it goes out with the next statement or the `COMMIT`).
    package func reserve(_ orderId: UUID, lines: [OrderLine], on db: PostgresConnection) async throws {
        try await reserve([(orderId, lines)], on: db)
    }

    /// Records, in one statement, the reservations of several orders (a stock batch's);
    /// queued like ``reserve(_:lines:on:)``.
    package func reserve(_ orders: [(orderId: UUID, lines: [OrderLine])], on db: PostgresConnection) async throws {
        let rows = orders.flatMap { order in order.lines.map { (order.orderId, $0) } }
        guard !rows.isEmpty else { return }
        try await db.enqueue(
            """
            INSERT INTO stock_reservations (id, order_id, product_id, quantity, status)
            SELECT gen_random_uuid(), order_id, product_id, quantity, 'RESERVED'
            FROM unnest($1::uuid[], $2::uuid[], $3::int8[]) AS l(order_id, product_id, quantity)
            """, [rows.map(\.0), rows.map(\.1.productId), rows.map(\.1.quantity)])
    }

    /// Which of the orders hold a reservation already (in one statement, for a stock batch).
    package func reservedOrders(among orderIds: [UUID], on db: PostgresConnection) async throws -> Set<UUID> {
        Set(
            try await db.query("SELECT DISTINCT order_id FROM stock_reservations WHERE order_id = ANY($1) AND status = 'RESERVED'", [orderIds])
                .map { try $0.decode(UUID.self, "order_id") })
    }

    /// Marks the order's reservations committed (it was paid); queued like ``reserve(_:lines:on:)``.
    package func commit(_ orderId: UUID, on db: PostgresConnection) async throws {
        try await db.enqueue("UPDATE stock_reservations SET status = 'COMMITTED', updated_at = now() WHERE order_id = $1 AND status = 'RESERVED'", [orderId])
    }

    /// The products the orders hold reserved or committed stock of (what releasing them touches).
    package func reservedProducts(of orderIds: [UUID], on db: PostgresConnection) async throws -> Set<UUID> {
        Set(
            try await db.query(
                "SELECT DISTINCT product_id FROM stock_reservations WHERE order_id = ANY($1) AND status IN ('RESERVED', 'COMMITTED')", [orderIds]
            ).map { try $0.decode(UUID.self, "product_id") })
    }

    /// Releases the order's reserved or committed stock and returns what to give back; a
    /// second release (a redelivery, a duplicate event) finds nothing.
    package func release(_ orderId: UUID, on db: PostgresConnection) async throws -> [OrderLine] {
        try await db.query(
            """
            UPDATE stock_reservations SET status = 'RELEASED', updated_at = now()
            WHERE order_id = $1 AND status IN ('RESERVED', 'COMMITTED')
            RETURNING product_id, quantity
            """, [orderId]
        ).map { OrderLine(productId: try $0.decode(UUID.self, "product_id"), quantity: try $0.decode(Int.self, "quantity")) }
    }
}
