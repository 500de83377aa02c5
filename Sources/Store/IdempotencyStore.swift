import Foundation
import Postgres
import Units

/// `Idempotency-Key`s: `idempotency_keys`, scoped per user, kept 24 hours.
///
/// A key is decided inside the transaction that places the order: ``lookUp(userId:key:requestHash:on:)``
/// takes a transaction-scoped advisory lock on the (user, key) pair without waiting, so a
/// concurrent request with the same key is told at once that the first is in flight; the
/// response is stored with ``record(userId:key:requestHash:status:body:on:)`` in that same
/// transaction, so "order exists" and "response stored" can never disagree. A request that
/// fails or dies rolls back and its lock ends with its transaction: nothing is left to
/// release, and no key is ever left in flight.
package struct IdempotencyStore: Sendable {
    /// What the key's row says for this request.
    package enum Lookup: Sendable {
        /// Not used yet (or expired): this transaction places the request and records it.
        case fresh
        /// Finished before: answer with the stored response.
        case replay(status: Int, body: String)
        /// The key was used with another request body.
        case mismatch
        /// Another transaction is placing a request with this key right now.
        case inFlight
    }

    /// An IN_FLIGHT row (written by a version that claimed keys outside the placement's
    /// transaction) older than this belongs to a request that is gone.
    package static let abandonedAfterSeconds = 60

    /// Creates the store.
    package init() {}

    /// In the caller's transaction: locks the (user, key) pair for the rest of it if no other
    /// transaction holds it (else ``Lookup/inFlight``), then reads the key. One round trip.
    package func lookUp(userId: UUID, key: String, requestHash: String, on db: PostgresConnection) async throws -> Lookup {
        let statement = lookUpStatement(userId: userId, key: key)
        return try await decide(db.queries([statement])[0], userId: userId, key: key, requestHash: requestHash, on: db)
    }

    /// The look-up of ``lookUp(userId:key:requestHash:on:)`` as a statement, for a caller that
    /// sends it in one round trip with its other reads (``PostgresConnection/queries(_:)``);
    /// ``decide(_:userId:key:requestHash:on:)`` reads its answer.
    package func lookUpStatement(userId: UUID, key: String) -> PostgresStatement {
        PostgresStatement(
            """
            SELECT pg_try_advisory_xact_lock(hashtext('idempotency:' || $1::text), hashtext($2)) AS locked,
                   k.request_hash, k.status, k.response_status, k.response_body::text AS body,
                   k.expires_at < now() AS expired, k.created_at < now() - make_interval(secs => $3) AS abandoned
            FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.user_id = $1 AND k.key = $2
            """, [userId, key, Self.abandonedAfterSeconds])
    }

    /// What the answer of ``lookUpStatement(userId:key:)`` means for a request with
    /// `requestHash`. A key that expired (or an abandoned claim) is deleted with the
    /// transaction's next statement, and the key is used afresh.
    package func decide(_ rows: PostgresRows, userId: UUID, key: String, requestHash: String, on db: PostgresConnection) async throws -> Lookup {
        let row = rows[0]
        guard try row.decode(Bool.self, "locked") else { return .inFlight }
        guard let storedHash = try row.decode(String?.self, "request_hash") else { return .fresh }
        let completed = try row.decode(String.self, "status") == "COMPLETED"
        // An expired key, or an IN_FLIGHT row of a request that is gone, is used afresh.
        if try row.decode(Bool.self, "expired") || (!completed && row.decode(Bool.self, "abandoned")) {
            try await db.enqueue("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2", [userId, key])
            return .fresh
        }
        guard storedHash == requestHash else { return .mismatch }
        guard completed else { return .inFlight }
        return .replay(status: try row.decode(Int.self, "response_status"), body: try row.decode(String.self, "body"))
    }

    /// Stores the response for a key found ``Lookup/fresh``, in the caller's transaction (the
    /// one holding the key's lock); returns the body as stored (jsonb normalises it), so the
    /// first answer and every replay are byte-identical.
    package func record(userId: UUID, key: String, requestHash: String, status: Int, body: Data, on db: PostgresConnection) async throws -> String {
        try await db.query(Self.recordSQL, [userId, key, requestHash, status, PostgresJSON(data: body)])[0].decode(String.self, "body")
    }

    /// ``record(userId:key:requestHash:status:body:on:)`` as the transaction's last statement:
    /// it goes out with the `COMMIT`, in the same round trip, and the transaction is committed
    /// when this returns (``PostgresConnection/queryAndCommit(_:_:)``).
    package func recordAndCommit(userId: UUID, key: String, requestHash: String, status: Int, body: Data, on db: PostgresConnection) async throws -> String {
        try await db.queryAndCommit(Self.recordSQL, [userId, key, requestHash, status, PostgresJSON(data: body)])[0].decode(String.self, "body")
    }

    private static let recordSQL = """
        INSERT INTO idempotency_keys (user_id, key, request_hash, status, response_status, response_body, expires_at)
        VALUES ($1, $2, $3, 'COMPLETED', $4, $5, now() + interval '24 hours') RETURNING response_body::text AS body
        """

    /// Deletes, at most `batch`, keys expired longer than `age` ago.
    package func pruneExpired(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM idempotency_keys WHERE (user_id, key) IN (
              SELECT user_id, key FROM idempotency_keys WHERE expires_at < now() - make_interval(secs => $1) LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }

    /// Deletes, at most `batch`, IN_FLIGHT rows older than `age`: claims written by versions
    /// that claimed keys outside the placement transaction, whose request then crashed.
    package func pruneAbandoned(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM idempotency_keys WHERE (user_id, key) IN (
              SELECT user_id, key FROM idempotency_keys WHERE status = 'IN_FLIGHT' AND created_at < now() - make_interval(secs => $1) LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }

    /// How many claims are in flight (for drills and status).
    package func inFlight(on pool: PostgresPool) async throws -> Int {
        try await pool.query("SELECT count(*) AS n FROM idempotency_keys WHERE status = 'IN_FLIGHT'")[0].decode(Int.self, "n")
    }
}
