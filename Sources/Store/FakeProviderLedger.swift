import Domain
import Foundation
import Postgres

/// The fake payment provider's own records: `fake_provider_operations` (its ledger of
/// charges and refunds, keyed by idempotency key), `fake_provider_outage` (the drill switch)
/// and `fake_provider_refused_calls`. It stands for a processor's side, so it is written on
/// its own pool, outside the worker's transaction.
package struct FakeProviderLedger: Sendable {
    let pool: PostgresPool

    /// The ledger on `pool` (not the pool whose transaction calls the provider).
    package init(pool: PostgresPool) { self.pool = pool }

    /// One operation as the ledger keeps it.
    package struct Operation: Sendable {
        package let id: UUID
        package let succeeded: Bool
        package let declineCode: String?
    }

    /// Whether the drill switch says the provider is down.
    package func outage() async throws -> Bool {
        try await pool.query("SELECT active FROM fake_provider_outage WHERE id = 1").first?.decode(Bool.self, "active") ?? false
    }

    /// Throws the drill switch: while `down`, every provider call fails transiently, as an
    /// unreachable processor would.
    package func setOutage(_ down: Bool) async throws {
        try await pool.query("UPDATE fake_provider_outage SET active = $1 WHERE id = 1", [down])
    }

    /// Notes a call refused during an outage drill.
    package func noteRefused(_ key: String) async throws {
        try await pool.query("INSERT INTO fake_provider_refused_calls (idempotency_key) VALUES ($1)", [key])
    }

    /// Stores a new operation in one round trip, unless the drill switch says the provider is
    /// down or an operation with the same key exists; returns the stored operation, or nil
    /// when nothing was stored (ask ``outage()`` and ``operation(key:kind:)`` which it was).
    /// A charge is the provider's hot path: the outage check, the insert and the read back
    /// were three round trips and three transactions.
    package func recordUnlessDownOrTaken(
        key: String, kind: String, orderId: UUID, amountCents: Int, currency: String, method: String?,
        succeeded: Bool, declineCode: String?
    ) async throws -> Operation? {
        try await pool.query(
            """
            INSERT INTO fake_provider_operations (id, idempotency_key, kind, order_id, amount_cents, currency, payment_method, outcome, decline_code)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
            WHERE NOT EXISTS (SELECT 1 FROM fake_provider_outage WHERE id = 1 AND active)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id, outcome, decline_code
            """,
            [UUID.random(), key, kind, orderId, amountCents, currency, method, succeeded ? "succeeded" : "declined", declineCode]
        ).first.map(operation)
    }

    /// The operation stored under `key` (of `kind`, when given).
    package func operation(key: String, kind: String?) async throws -> Operation? {
        try await pool.query(
            "SELECT id, outcome, decline_code FROM fake_provider_operations WHERE idempotency_key = $1 AND ($2::text IS NULL OR kind = $2)", [key, kind]
        ).first.map(operation)
    }

    /// The operation with `id`.
    package func operation(id: UUID) async throws -> Operation? {
        try await pool.query("SELECT id, outcome, decline_code FROM fake_provider_operations WHERE id = $1", [id]).first.map(operation)
    }

    private func operation(_ row: PostgresRow) throws -> Operation {
        Operation(
            id: try row.decode(UUID.self, "id"), succeeded: try row.decode(String.self, "outcome") == "succeeded",
            declineCode: try row.decode(String?.self, "decline_code"))
    }

    /// A recorded operation with what the reconciler compares.
    package struct Entry: Sendable {
        package let id: UUID
        package let key: String
        package let orderId: UUID?
        package let amountCents: Int
        package let succeeded: Bool
        package let declineCode: String?
        package let createdAt: Date
    }

    private func entry(_ row: PostgresRow) throws -> Entry {
        Entry(
            id: try row.decode(UUID.self, "id"), key: try row.decode(String.self, "idempotency_key"), orderId: try row.decode(UUID?.self, "order_id"),
            amountCents: try row.decode(Int.self, "amount_cents"), succeeded: try row.decode(String.self, "outcome") == "succeeded",
            declineCode: try row.decode(String?.self, "decline_code"), createdAt: try row.decode(Date.self, "created_at"))
    }
    private let columns = "id, idempotency_key, order_id, amount_cents, outcome, decline_code, created_at"

    /// The refunds recorded for the order of the charge `chargeId`.
    package func refunds(ofCharge chargeId: UUID) async throws -> [Entry] {
        try await pool.query(
            """
            SELECT \(columns) FROM fake_provider_operations WHERE kind = 'refund'
              AND order_id = (SELECT order_id FROM fake_provider_operations WHERE id = $1)
            """, [chargeId]
        ).map(entry)
    }

    /// Charges recorded since `since`, oldest first, at most `limit`, and the refunds of their orders.
    package func charges(since: Date, limit: Int) async throws -> (charges: [Entry], refunds: [UUID: [Entry]]) {
        let charges = try await pool.query(
            "SELECT \(columns) FROM fake_provider_operations WHERE kind = 'charge' AND created_at >= $1 ORDER BY created_at LIMIT $2", [since, limit]
        ).map(entry)
        let orderIds = charges.compactMap(\.orderId)
        let refunds = try await pool.query(
            "SELECT \(columns) FROM fake_provider_operations WHERE kind = 'refund' AND order_id = ANY($1::uuid[])", [orderIds]
        ).map(entry)
        return (charges, Dictionary(grouping: refunds, by: { $0.orderId ?? UUID() }))
    }
}
