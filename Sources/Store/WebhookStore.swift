import Domain
import Foundation
import Postgres

/// Merchant webhooks: `webhook_endpoints` (what an admin registered) and `webhook_deliveries`
/// (one row per endpoint and event, with its attempts).
package struct WebhookStore: Sendable {
    /// Seals signing secrets before they are stored (`WEBHOOK_SECRETS_KEY`); nil stores them
    /// in clear, as before that was configured.
    let seal: SecretSeal?

    /// Creates the store; give `seal` wherever secrets are written or read for signing.
    package init(seal: SecretSeal? = nil) {
        self.seal = seal
    }

    /// `secret` as stored for endpoint `id`.
    private func stored(_ secret: String, for id: UUID) throws -> String {
        try seal?.seal(secret, for: id) ?? secret
    }

    /// An endpoint as the API shows it (never its secret, which is shown once).
    package struct Endpoint: Codable, Sendable {
        package let id: UUID
        package let url: String
        package let eventTypes: [String]
        package let enabled: Bool
        package let failingSince: Date?
        package let disabledReason: String?
        /// Until when the previous secret still signs (after a rotation).
        package let previousSecretExpiresAt: Date?
        package let createdAt: Date
        package let updatedAt: Date
    }

    static let endpointColumns = "id, url, event_types, enabled, failing_since, disabled_reason, previous_secret_expires_at, created_at, updated_at"

    private func endpoint(_ row: PostgresRow) throws -> Endpoint {
        Endpoint(
            id: try row.decode(UUID.self, "id"), url: try row.decode(String.self, "url"), eventTypes: try row.decode([String].self, "event_types"),
            enabled: try row.decode(Bool.self, "enabled"), failingSince: try row.decode(Date?.self, "failing_since"),
            disabledReason: try row.decode(String?.self, "disabled_reason"),
            previousSecretExpiresAt: try row.decode(Date?.self, "previous_secret_expires_at"), createdAt: try row.decode(Date.self, "created_at"),
            updatedAt: try row.decode(Date.self, "updated_at"))
    }

    // MARK: Endpoints

    /// Registers an endpoint.
    package func create(id: UUID, url: String, eventTypes: [String], enabled: Bool, secret: String, createdBy: UUID, on pool: PostgresPool) async throws
        -> Endpoint
    {
        try endpoint(
            try await pool.query(
                """
                INSERT INTO webhook_endpoints (id, url, event_types, enabled, secret, created_by) VALUES ($1, $2, $3, $4, $5, $6)
                RETURNING \(Self.endpointColumns)
                """, [id, url, eventTypes, enabled, try stored(secret, for: id), createdBy])[0])
    }

    /// The endpoint `id`.
    package func endpoint(_ id: UUID, on pool: PostgresPool) async throws -> Endpoint? {
        try await pool.query("SELECT \(Self.endpointColumns) FROM webhook_endpoints WHERE id = $1", [id]).first.map(endpoint)
    }

    /// A page of endpoints, oldest first.
    package func endpoints(size: Int, offset: Int, on pool: PostgresPool) async throws -> (endpoints: [Endpoint], total: Int) {
        let found = try await pool.page(
            select: Self.endpointColumns, "FROM webhook_endpoints", orderBy: "created_at, id", size: size, offset: offset)
        return (try found.rows.map(endpoint), found.total)
    }

    /// Changes what is given; enabling again clears the failure record.
    package func update(_ id: UUID, url: String?, eventTypes: [String]?, enabled: Bool?, on pool: PostgresPool) async throws -> Endpoint? {
        try await pool.query(
            """
            UPDATE webhook_endpoints SET url = coalesce($2, url), event_types = coalesce($3, event_types), enabled = coalesce($4, enabled),
              failing_since = CASE WHEN $4 THEN NULL ELSE failing_since END,
              disabled_reason = CASE WHEN $4 THEN NULL ELSE disabled_reason END, updated_at = now()
            WHERE id = $1 RETURNING \(Self.endpointColumns)
            """, [id, url, eventTypes, enabled]
        ).first.map(endpoint)
    }

    /// Replaces the secret; the previous one keeps signing (as a second `v1`) for `overlap`.
    package func rotateSecret(_ id: UUID, to secret: String, overlap: Duration, on pool: PostgresPool) async throws -> Endpoint? {
        try await pool.query(
            """
            UPDATE webhook_endpoints SET previous_secret = secret, secret = $2,
              previous_secret_expires_at = now() + make_interval(secs => $3), updated_at = now()
            WHERE id = $1 RETURNING \(Self.endpointColumns)
            """, [id, try stored(secret, for: id), Double(overlap.components.seconds)]
        ).first.map(endpoint)
    }

    /// Seals the secrets stored in clear before sealing was configured (each row changed only
    /// if nobody rotated it meanwhile); returns how many endpoints it sealed.
    package func sealStoredSecrets(on pool: PostgresPool) async throws -> Int {
        guard let seal else { return 0 }
        let rows = try await pool.query(
            "SELECT id, secret, previous_secret FROM webhook_endpoints WHERE secret NOT LIKE 'sealed:%' OR previous_secret NOT LIKE 'sealed:%'")
        var sealed = 0
        for row in rows {
            let id = try row.decode(UUID.self, "id")
            let (secret, previous) = (try row.decode(String.self, "secret"), try row.decode(String?.self, "previous_secret"))
            func sealedValue(_ value: String) throws -> String { SecretSeal.isSealed(value) ? value : try seal.seal(value, for: id) }
            sealed += try await pool.query(
                "UPDATE webhook_endpoints SET secret = $2, previous_secret = $3 WHERE id = $1 AND secret = $4 AND previous_secret IS NOT DISTINCT FROM $5",
                [id, try sealedValue(secret), try previous.map(sealedValue), secret, previous]
            ).affectedRows
        }
        return sealed
    }

    /// Deletes the endpoint and its deliveries; false when there was none.
    package func delete(_ id: UUID, on pool: PostgresPool) async throws -> Bool {
        try await pool.query("DELETE FROM webhook_endpoints WHERE id = $1", [id]).affectedRows == 1
    }

    // MARK: Deliveries

    /// Every pattern an enabled endpoint subscribes to, read once for a notification batch
    /// (with its other reads), so a batch's events that no endpoint receives are neither
    /// encoded nor sent to the database; ``subscribedPatterns(from:)`` reads its answer.
    package static let subscribedPatternsStatement = PostgresStatement(
        "SELECT DISTINCT unnest(event_types) AS pattern FROM webhook_endpoints WHERE enabled")

    /// Reads the answer to ``subscribedPatternsStatement``.
    package static func subscribedPatterns(from rows: PostgresRows) throws -> Set<String> {
        Set(try rows.map { try $0.decode(String.self, "pattern") })
    }

    /// Queues a PENDING delivery of the event for every enabled endpoint subscribed to it,
    /// once per endpoint and event. The endpoints are chosen in the same statement (an
    /// endpoint's `event_types` share a pattern with `patterns`, from
    /// ``MerchantWebhooks/patterns(receiving:)``), so the statement goes out with the
    /// transaction's next one: the notification worker spends no round trip on an event
    /// nobody is subscribed to.
    package func enqueue(eventId: UUID, eventType: String, body: String, patterns: [String], on db: PostgresConnection) async throws {
        try await db.enqueue(
            """
            INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, status)
            SELECT gen_random_uuid(), e.id, $1, $2, $3, 'PENDING' FROM webhook_endpoints e
            WHERE e.enabled AND e.event_types && $4::text[]
            ON CONFLICT (endpoint_id, event_id) DO NOTHING
            """, [eventId, eventType, body, patterns])
    }

    /// A delivery leased for sending, with what signing it needs.
    package struct Due: Sendable {
        package let id: UUID
        package let endpointId: UUID
        package let eventId: UUID
        package let eventType: String
        package let body: String
        package let attempts: Int
        package let url: String
        /// The secrets that sign it, opened (empty when they could not be: see `secretProblem`).
        package let secrets: [String]
        /// Why the secrets could not be opened (`WEBHOOK_SECRETS_KEY` missing or another key).
        package let secretProblem: String?
        package let failingSince: Date?
    }

    /// Leases up to `limit` due deliveries of enabled endpoints for `lease` (SENDING): replicas
    /// skip each other's rows, and a lease that ran out (its dispatcher died) is due again.
    package func lease(limit: Int, lease: Duration, on pool: PostgresPool) async throws -> [Due] {
        try await pool.query(
            """
            WITH due AS (
              SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
              WHERE e.enabled AND ((d.status = 'PENDING' AND d.next_attempt_at <= now()) OR (d.status = 'SENDING' AND d.lease_until < now()))
              ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE OF d SKIP LOCKED)
            UPDATE webhook_deliveries d SET status = 'SENDING', lease_until = now() + make_interval(secs => $2), updated_at = now()
            FROM due, webhook_endpoints e WHERE d.id = due.id AND e.id = d.endpoint_id
            RETURNING d.id, d.endpoint_id, d.event_id, d.event_type, d.body, d.attempts, e.url, e.secret, e.failing_since,
                      CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous_secret
            """, [limit, Double(lease.components.seconds)]
        ).map { row in
            let endpointId = try row.decode(UUID.self, "endpoint_id")
            let stored = [try row.decode(String.self, "secret")] + [try row.decode(String?.self, "previous_secret")].compactMap { $0 }
            var secrets: [String] = []
            var problem: String?
            do {
                secrets = try stored.map { try SecretSeal.reveal($0, for: endpointId, with: seal) }
            } catch {
                problem = "\(error)"
            }
            return Due(
                id: try row.decode(UUID.self, "id"), endpointId: endpointId, eventId: try row.decode(UUID.self, "event_id"),
                eventType: try row.decode(String.self, "event_type"), body: try row.decode(String.self, "body"), attempts: try row.decode(Int.self, "attempts"),
                url: try row.decode(String.self, "url"), secrets: secrets, secretProblem: problem, failingSince: try row.decode(Date?.self, "failing_since"))
        }
    }

    /// What one attempt found.
    package struct Attempt: Sendable {
        package let responseCode: Int?
        package let durationMs: Int
        package let error: String?
        package init(responseCode: Int?, durationMs: Int, error: String?) {
            self.responseCode = responseCode
            self.durationMs = durationMs
            self.error = error
        }
    }

    /// Records a delivered attempt, and the endpoint healthy again.
    package func recordDelivered(_ due: Due, _ attempt: Attempt, on pool: PostgresPool) async throws {
        try await pool.withTransaction { db in
            try await db.query(
                """
                UPDATE webhook_deliveries SET status = 'SUCCEEDED', attempts = attempts + 1, response_code = $2, duration_ms = $3, last_error = NULL,
                  lease_until = NULL, updated_at = now() WHERE id = $1
                """, [due.id, attempt.responseCode, attempt.durationMs])
            try await db.query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL", [due.endpointId])
        }
    }

    /// Records a failed attempt: due again after `retryIn`, or given up (FAILED) when nil. The
    /// endpoint's failure streak starts now unless it is running; returns when it began.
    package func recordFailed(_ due: Due, _ attempt: Attempt, retryIn: Duration?, on pool: PostgresPool) async throws -> Date {
        try await pool.withTransaction { db in
            try await db.query(
                """
                UPDATE webhook_deliveries SET status = CASE WHEN $4::float8 IS NULL THEN 'FAILED' ELSE 'PENDING' END, attempts = attempts + 1,
                  response_code = $2, duration_ms = $3, last_error = $5, lease_until = NULL,
                  next_attempt_at = now() + make_interval(secs => coalesce($4, 0)), updated_at = now() WHERE id = $1
                """,
                [
                    due.id, attempt.responseCode, attempt.durationMs, retryIn.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 },
                    attempt.error,
                ])
            return try await db.query(
                "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()) WHERE id = $1 RETURNING failing_since", [due.endpointId]
            ).first?.decode(Date.self, "failing_since") ?? Date()
        }
    }

    /// Disables an endpoint that kept failing; false when it was disabled already.
    package func disable(_ id: UUID, reason: String, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1 AND enabled", [id, reason]
        ).affectedRows == 1
    }

    /// Makes a delivery due now with a fresh set of attempts (a manual redelivery, or a replay
    /// of its dead letter); false when there is no such delivery (of `endpointId`, when given).
    package func redeliver(_ id: UUID, endpointId: UUID?, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            """
            UPDATE webhook_deliveries SET status = 'PENDING', attempts = 0, next_attempt_at = now(), lease_until = NULL, updated_at = now()
            WHERE id = $1 AND ($2::uuid IS NULL OR endpoint_id = $2)
            """, [id, endpointId]
        ).affectedRows == 1
    }

    /// A delivery in the log.
    package struct Delivery: Codable, Sendable {
        package let id: UUID
        package let endpointId: UUID
        package let eventId: UUID
        package let eventType: String
        package let status: String
        package let attempts: Int
        package let responseCode: Int?
        package let durationMs: Int?
        package let lastError: String?
        package let nextAttemptAt: Date?
        package let createdAt: Date
        package let updatedAt: Date
    }

    /// A page of deliveries, newest first: of `endpointId` (any when nil), in `status` (any when nil).
    package func deliveries(endpointId: UUID?, status: String?, size: Int, offset: Int, on pool: PostgresPool) async throws -> (
        deliveries: [Delivery], total: Int
    ) {
        let (rows, total) = try await pool.page(
            select: """
                id, endpoint_id, event_id, event_type, status, attempts, response_code, duration_ms, last_error,
                CASE WHEN status = 'PENDING' THEN next_attempt_at END AS next_attempt_at, created_at, updated_at
                """,
            "FROM webhook_deliveries WHERE ($1::uuid IS NULL OR endpoint_id = $1) AND ($2::text IS NULL OR status = $2)",
            orderBy: "created_at DESC, id", [endpointId, status], size: size, offset: offset)
        let deliveries = try rows.map {
            Delivery(
                id: try $0.decode(UUID.self, "id"), endpointId: try $0.decode(UUID.self, "endpoint_id"), eventId: try $0.decode(UUID.self, "event_id"),
                eventType: try $0.decode(String.self, "event_type"), status: try $0.decode(String.self, "status"),
                attempts: try $0.decode(Int.self, "attempts"), responseCode: try $0.decode(Int?.self, "response_code"),
                durationMs: try $0.decode(Int?.self, "duration_ms"), lastError: try $0.decode(String?.self, "last_error"),
                nextAttemptAt: try $0.decode(Date?.self, "next_attempt_at"), createdAt: try $0.decode(Date.self, "created_at"),
                updatedAt: try $0.decode(Date.self, "updated_at"))
        }
        return (deliveries, total)
    }

    /// Deletes, at most `batch`, deliveries that succeeded longer than `age` ago (failed ones
    /// stay for an operator).
    package func pruneDelivered(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM webhook_deliveries WHERE id IN (
              SELECT id FROM webhook_deliveries WHERE status = 'SUCCEEDED' AND updated_at < now() - make_interval(secs => $1) LIMIT $2)
            """, [Double(age.components.seconds), batch]
        ).affectedRows
    }
}
