import Domain
import Foundation
import Postgres
import Units

/// Accounts and sessions: `users`, `addresses`, `refresh_tokens` and `login_failures`.
package struct UserStore: Sendable {
    /// Creates the store.
    package init() {}

    // MARK: Users

    /// A user as the API shows it.
    package struct User: Codable, Sendable {
        package let id: UUID
        package let email: String
        package let firstName: String
        package let lastName: String
        package let role: String
        package let isActive: Bool
        package let createdAt: Date

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            email = try row.decode(String.self, "email")
            firstName = try row.decode(String.self, "first_name")
            lastName = try row.decode(String.self, "last_name")
            role = try row.decode(String.self, "role")
            isActive = try row.decode(Bool.self, "is_active")
            createdAt = try row.decode(Date.self, "created_at")
        }
    }

    static let userColumns = "id, email, first_name, last_name, role, is_active, created_at"

    /// What an access token relies on about its account, as it is now.
    package struct Standing: Sendable, Equatable {
        package let role: Role
        /// Not suspended and not closed.
        package let isActive: Bool
        /// Tokens issued before this instant are refused (signed out everywhere).
        package let tokensValidAfter: Date?
    }

    /// The standing of account `id`; nil when it does not exist.
    package func standing(of id: UUID, on pool: PostgresPool) async throws -> Standing? {
        try await pool.query("SELECT role, is_active AND closed_at IS NULL AS active, tokens_valid_after FROM users WHERE id = $1", [id]).first.map {
            Standing(
                role: Role(rawValue: try $0.decode(String.self, "role")) ?? .customer, isActive: try $0.decode(Bool.self, "active"),
                tokensValidAfter: try $0.decode(Date?.self, "tokens_valid_after"))
        }
    }

    /// Creates a user; a taken email (any case) throws the unique violation.
    package func create(id: UUID, email: String, passwordHash: String, firstName: String, lastName: String, role: Role, on pool: PostgresPool) async throws {
        try await pool.query(
            "INSERT INTO users (id, email, password_hash, first_name, last_name, role) VALUES ($1, $2, $3, $4, $5, $6)",
            [id, email, passwordHash, firstName, lastName, role.rawValue])
    }

    /// Whether an account with `email` exists (any case).
    package func emailTaken(_ email: String, on pool: PostgresPool) async throws -> Bool {
        try await pool.query("SELECT 1 FROM users WHERE lower(email) = lower($1)", [email]).count > 0
    }

    /// What sign-in checks about the account with `email` (any case).
    package struct Credentials: Sendable {
        package let id: UUID
        package let passwordHash: String
        package let role: Role?
        package let isActive: Bool
    }

    /// The credentials of the account with `email`; nil when there is none.
    package func credentials(email: String, on pool: PostgresPool) async throws -> Credentials? {
        try await pool.query(
            "SELECT id, password_hash, role, is_active AND closed_at IS NULL AS is_active FROM users WHERE lower(email) = lower($1)", [email]
        ).first.map {
            Credentials(
                id: try $0.decode(UUID.self, "id"), passwordHash: try $0.decode(String.self, "password_hash"),
                role: Role(rawValue: try $0.decode(String.self, "role")), isActive: try $0.decode(Bool.self, "is_active"))
        }
    }

    /// An open (not closed) account.
    package func user(_ id: UUID, on pool: PostgresPool) async throws -> User? {
        try await pool.query("SELECT \(Self.userColumns) FROM users WHERE id = $1 AND closed_at IS NULL", [id]).first.map(User.init)
    }

    /// Open accounts, oldest first.
    package func users(size: Int, offset: Int, on pool: PostgresPool) async throws -> (users: [User], total: Int) {
        let found = try await pool.page(
            select: Self.userColumns, "FROM users WHERE closed_at IS NULL", orderBy: "created_at, id", size: size, offset: offset)
        return (try found.rows.map(User.init), found.total)
    }

    /// Changes a user's names.
    package func rename(_ id: UUID, firstName: String, lastName: String, on pool: PostgresPool) async throws {
        try await pool.query("UPDATE users SET first_name = $2, last_name = $3, updated_at = now() WHERE id = $1", [id, firstName, lastName])
    }

    /// Changes what an admin may change; a suspension also ends the account's sessions.
    package func administer(_ id: UUID, firstName: String, lastName: String, isActive: Bool, role: String, on pool: PostgresPool) async throws {
        try await pool.withTransaction { db in
            try await db.query(
                "UPDATE users SET first_name = $2, last_name = $3, is_active = $4, role = $5, updated_at = now() WHERE id = $1 AND closed_at IS NULL",
                [id, firstName, lastName, isActive, role])
            if !isActive { try await revokeSessions(of: id, on: db) }
        }
    }

    /// Closes an account for good: no sign-in, its sessions end; its row stays for its orders.
    package func close(_ id: UUID, on pool: PostgresPool) async throws {
        try await pool.withTransaction { db in
            try await db.query("UPDATE users SET is_active = false, closed_at = now(), updated_at = now() WHERE id = $1", [id])
            try await revokeSessions(of: id, on: db)
        }
    }

    /// Signs an account out everywhere: every refresh token revoked, every access token
    /// issued until now refused.
    package func signOutEverywhere(_ id: UUID, on pool: PostgresPool) async throws {
        try await pool.withTransaction { db in
            try await revokeSessions(of: id, on: db)
            try await db.query("UPDATE users SET tokens_valid_after = clock_timestamp(), updated_at = now() WHERE id = $1", [id])
        }
    }

    // MARK: Addresses

    /// A saved address.
    package struct Address: Codable, Sendable {
        package let id: UUID
        package let line1: String
        package let line2: String?
        package let city: String
        package let postalCode: String
        package let country: String
        package let isDefault: Bool

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            line1 = try row.decode(String.self, "line1")
            line2 = try row.decode(String?.self, "line2")
            city = try row.decode(String.self, "city")
            postalCode = try row.decode(String.self, "postal_code")
            country = try row.decode(String.self, "country")
            isDefault = try row.decode(Bool.self, "is_default")
        }
    }

    /// An address's fields as written.
    package struct AddressFields: Sendable {
        package let line1: String
        package let line2: String?
        package let city: String
        package let postalCode: String
        package let country: String
        package let isDefault: Bool
        package init(line1: String, line2: String?, city: String, postalCode: String, country: String, isDefault: Bool) {
            self.line1 = line1
            self.line2 = line2
            self.city = city
            self.postalCode = postalCode
            self.country = country
            self.isDefault = isDefault
        }
    }

    static let addressColumns = "id, line1, line2, city, postal_code, country, is_default"

    /// The user's addresses, oldest first.
    package func addresses(of userId: UUID, on pool: PostgresPool) async throws -> [Address] {
        try await pool.query("SELECT \(Self.addressColumns) FROM addresses WHERE user_id = $1 ORDER BY created_at, id", [userId]).map(Address.init)
    }

    /// Adds an address unless the user has `limit` already (nil then). A new default address
    /// takes the flag from the others.
    package func addAddress(to userId: UUID, _ fields: AddressFields, limit: Int, on pool: PostgresPool) async throws -> Address? {
        try await pool.withTransaction { db -> Address? in
            try await db.query("SELECT id FROM users WHERE id = $1 FOR UPDATE", [userId])
            guard try await db.query("SELECT count(*) AS n FROM addresses WHERE user_id = $1", [userId])[0].decode(Int.self, "n") < limit else { return nil }
            if fields.isDefault { try await db.query("UPDATE addresses SET is_default = false WHERE user_id = $1", [userId]) }
            return try Address(
                try await db.query(
                    """
                    INSERT INTO addresses (id, user_id, line1, line2, city, postal_code, country, is_default)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING \(Self.addressColumns)
                    """, [UUID(), userId, fields.line1, fields.line2, fields.city, fields.postalCode, fields.country, fields.isDefault])[0])
        }
    }

    /// Replaces one of the user's addresses; nil when it is not theirs.
    package func replaceAddress(_ id: UUID, of userId: UUID, _ fields: AddressFields, on pool: PostgresPool) async throws -> Address? {
        try await pool.withTransaction { db -> Address? in
            if fields.isDefault { try await db.query("UPDATE addresses SET is_default = false WHERE user_id = $1 AND id <> $2", [userId, id]) }
            return try await db.query(
                """
                UPDATE addresses SET line1 = $3, line2 = $4, city = $5, postal_code = $6, country = $7, is_default = $8
                WHERE id = $1 AND user_id = $2 RETURNING \(Self.addressColumns)
                """, [id, userId, fields.line1, fields.line2, fields.city, fields.postalCode, fields.country, fields.isDefault]
            ).first.map(Address.init)
        }
    }

    /// Deletes one of the user's addresses; false when it is not theirs.
    package func deleteAddress(_ id: UUID, of userId: UUID, on pool: PostgresPool) async throws -> Bool {
        try await pool.query("DELETE FROM addresses WHERE id = $1 AND user_id = $2", [id, userId]).affectedRows == 1
    }

    // MARK: Refresh tokens

    /// Stores the hash of a new refresh token of `family` (begun at `startedAt`, or now for a
    /// new sign-in), valid 30 days.
    package func storeRefreshToken(hash: String, userId: UUID, family: UUID, startedAt: Date?, on db: PostgresConnection) async throws {
        try await db.query(
            """
            INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, family_started_at)
            VALUES ($1, $2, $3, $4, now() + interval '30 days', coalesce($5, now()))
            """, [UUID(), userId, family, hash, startedAt])
    }

    /// What rotating a refresh token decides.
    package enum Rotation: Sendable {
        /// Valid: it is now spent; issue the next one of `family`.
        case valid(userId: UUID, role: Role, family: UUID, familyStartedAt: Date)
        /// Used or revoked before: it leaked, and its whole family is now revoked.
        case reused
        /// Unknown, expired, past its family's lifetime, or its account is not active.
        case invalid
    }

    /// Spends the refresh token with `hash`, in the caller's transaction (row locked): a
    /// token works once, and presenting a spent one revokes its family.
    package func rotate(hash: String, familyLifetime: Duration, on db: PostgresConnection) async throws -> Rotation {
        guard
            let row = try await db.query(
                """
                SELECT t.id, t.user_id, t.family_id, t.family_started_at, t.used_at IS NOT NULL OR t.revoked_at IS NOT NULL AS spent,
                       t.expires_at < now() OR t.family_started_at < now() - make_interval(secs => $2) AS expired,
                       u.role, u.is_active AND u.closed_at IS NULL AS is_active
                FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 FOR UPDATE OF t
                """, [hash, familyLifetime.secondsWithFraction]
            ).first
        else { return .invalid }
        let family = try row.decode(UUID.self, "family_id")
        if try row.decode(Bool.self, "spent") {
            try await db.query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", [family])
            return .reused
        }
        guard try !row.decode(Bool.self, "expired"), try row.decode(Bool.self, "is_active"),
            let role = Role(rawValue: try row.decode(String.self, "role"))
        else { return .invalid }
        try await db.query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", [try row.decode(UUID.self, "id")])
        return .valid(userId: try row.decode(UUID.self, "user_id"), role: role, family: family, familyStartedAt: try row.decode(Date.self, "family_started_at"))
    }

    /// Revokes the whole family of the token with `hash` (sign-out of one device).
    package func revokeFamily(ofTokenHash hash: String, on pool: PostgresPool) async throws {
        try await pool.query(
            """
            UPDATE refresh_tokens SET revoked_at = now()
            WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL
            """, [hash])
    }

    private func revokeSessions(of userId: UUID, on db: PostgresConnection) async throws {
        try await db.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [userId])
    }

    /// Deletes, at most `batch`, refresh tokens expired or revoked longer than `age` ago.
    /// Used tokens of a live family stay until they expire, so a reuse is caught all along.
    package func pruneRefreshTokens(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM refresh_tokens WHERE id IN (
              SELECT id FROM refresh_tokens WHERE expires_at < now() - make_interval(secs => $1)
              UNION ALL
              SELECT id FROM refresh_tokens WHERE revoked_at < now() - make_interval(secs => $1) LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }

    // MARK: Sign-in failures

    /// Recent failures around a sign-in attempt.
    package struct FailureCounts: Sendable {
        package let byPair: Int
        package let byAddress: Int
        package let byAccount: Int
        /// Seconds until the pair's, and the address's, oldest failure leaves the window.
        package let pairWait: Int?
        package let addressWait: Int?
    }

    /// Counts the failures of `account` and of `address` within `window`, holding the pair's
    /// advisory lock for the caller's transaction (attempts of one pair take turns across
    /// replicas).
    package func failureCounts(account: String, address: String, window: Duration, on db: PostgresConnection) async throws -> FailureCounts {
        try await db.advisoryTransactionLock("signin-pair:\(account)|\(address)")
        let row = try await db.query(
            """
            SELECT count(*) FILTER (WHERE account = $1 AND client_address = $2) AS by_pair,
                   count(*) FILTER (WHERE client_address = $2) AS by_address,
                   count(*) FILTER (WHERE account = $1) AS by_account,
                   extract(epoch FROM min(failed_at) FILTER (WHERE account = $1 AND client_address = $2) + make_interval(secs => $3) - now())::int8 AS pair_wait,
                   extract(epoch FROM min(failed_at) FILTER (WHERE client_address = $2) + make_interval(secs => $3) - now())::int8 AS address_wait
            FROM login_failures WHERE (account = $1 OR client_address = $2) AND failed_at > now() - make_interval(secs => $3)
            """, [account, address, window.secondsWithFraction])[0]
        return FailureCounts(
            byPair: try row.decode(Int.self, "by_pair"), byAddress: try row.decode(Int.self, "by_address"), byAccount: try row.decode(Int.self, "by_account"),
            pairWait: try row.decode(Int?.self, "pair_wait"), addressWait: try row.decode(Int?.self, "address_wait"))
    }

    /// Records a failure; returns its id (so a correct password can withdraw it).
    package func recordFailure(account: String, address: String, on db: PostgresConnection) async throws -> Int {
        try await db.query("INSERT INTO login_failures (account, client_address) VALUES ($1, $2) RETURNING id", [account, address])[0].decode(Int.self, "id")
    }

    /// Forgets the pair's failures (the right password was given).
    package func clearFailures(account: String, address: String, on pool: PostgresPool) async throws {
        try await pool.query("DELETE FROM login_failures WHERE account = $1 AND client_address = $2", [account, address])
    }

    /// Forgets one recorded failure (the attempt was never checked).
    package func withdrawFailure(_ id: Int, on pool: PostgresPool) async throws {
        try await pool.query("DELETE FROM login_failures WHERE id = $1", [id])
    }

    /// Deletes, at most `batch`, failures older than `age`.
    package func pruneFailures(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            "DELETE FROM login_failures WHERE id IN (SELECT id FROM login_failures WHERE failed_at < now() - make_interval(secs => $1) LIMIT $2)",
            [age.secondsWithFraction, batch]
        ).affectedRows
    }
}
