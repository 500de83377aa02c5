import Domain
import Foundation
import Hummingbird
import HummingbirdBcrypt
import Operations
import Postgres

/// Verifies `Authorization: Bearer <access token>` and sets the request's identity; any
/// missing, malformed, forged or expired token is a 401.
struct AuthMiddleware: RouterMiddleware {
    let tokens: TokenService

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw APIError.unauthorized("a bearer access token is required")
        }
        guard let identity = await tokens.verify(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)) else {
            throw APIError.unauthorized("the access token is invalid or expired")
        }
        var context = context
        context.identity = identity
        context.logger[metadataKey: "user.id"] = "\(identity.userId)"
        return try await next(request, context)
    }
}

/// On public routes: a valid `Authorization: Bearer` token sets the identity (so a route can
/// show its owner or an admin more); none, or an invalid one, leaves the caller anonymous.
struct OptionalAuthMiddleware: RouterMiddleware {
    let tokens: TokenService

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer "),
              let identity = await tokens.verify(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces))
        else { return try await next(request, context) }
        var context = context
        context.identity = identity
        return try await next(request, context)
    }
}

/// Password hashing with bcrypt, off the cooperative thread pool (it is deliberately slow).
struct PasswordHasher: Sendable {
    /// bcrypt cost (`BCRYPT_COST`); each step doubles the work.
    let cost: UInt8

    func hash(_ password: String) async -> String {
        await offload { Passwords.hash(password, cost: cost) }
    }

    func verify(_ password: String, hash: String) async -> Bool {
        await offload { Passwords.verify(password, hash: hash) }
    }

    private func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}

/// `POST /api/v1/auth/register` and `POST /api/v1/auth/login`.
struct AuthController: Sendable {
    /// Failed logins allowed per account and per client address within `window`.
    struct Throttle: Sendable {
        var perAccount = 5
        var perAddress = 20
        var window: Duration = .seconds(900)
    }

    let pool: PostgresPool
    let tokens: TokenService
    let hasher: PasswordHasher
    /// A valid hash to verify against when the email is unknown, so both paths cost the same.
    let decoyHash: String
    let throttle: Throttle

    /// Passwords too common to allow whatever their length (a short deny list; NIST 800-63B).
    static let commonPasswords: Set<String> = [
        "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyuiop", "qwerty123",
        "iloveyou", "11111111", "00000000", "abc12345", "letmein1", "welcome1", "admin123", "passw0rd",
    ]

    /// Problems with a new password, if any: 8–128 characters, no NUL, not only digits, not
    /// common. Each rule is one the OpenAPI document states, so clients can check first.
    static func passwordProblems(_ password: String) -> [String] {
        var problems: [String] = []
        if FieldRules.length(password) < Passwords.lengths.lowerBound { problems.append("must be at least \(Passwords.lengths.lowerBound) characters") }
        if FieldRules.length(password) > Passwords.lengths.upperBound { problems.append("must be at most \(Passwords.lengths.upperBound) characters") }
        if !FieldRules.hasNoNUL(password) { problems.append("must not contain NUL") }
        if password.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) { problems.append("must not be only digits") }
        if commonPasswords.contains(password.lowercased()) { problems.append("is too common") }
        return problems
    }

    struct Registration: Decodable {
        let email: String
        let password: String
        let firstName: String
        let lastName: String
    }

    struct Credentials: Decodable {
        let email: String
        let password: String
    }

    struct UserBody: ResponseEncodable {
        let id: UUID
        let email: String
        let firstName: String
        let lastName: String
        let role: String
    }

    struct TokenBody: ResponseEncodable {
        let accessToken: String
        let refreshToken: String
        let tokenType = "Bearer"
        let expiresIn: Int
    }

    struct RefreshRequest: Decodable {
        let refreshToken: String
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("register") { request, context in try await register(request, context) }
        group.post("login") { request, context in try await login(request, context) }
        group.post("refresh") { request, context in try await refresh(request, context) }
        group.post("logout") { request, context in try await logout(request, context) }
    }

    static func validate(email: String) -> Bool { FieldRules.isEmail(email) }

    private func register(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<UserBody> {
        let (body, _) = try await request.decodeJSON(Registration.self, context: context)
        var problems: [(String, String)] = []
        if !Self.validate(email: body.email) { problems.append(("email", "must be a valid email address")) }
        problems += Self.passwordProblems(body.password).map { ("password", $0) }
        if !FieldRules.isText(body.firstName, max: 100) { problems.append(("first_name", "must be 1 to 100 characters, not only spaces")) }
        if !FieldRules.isText(body.lastName, max: 100) { problems.append(("last_name", "must be 1 to 100 characters, not only spaces")) }
        guard problems.isEmpty else { throw APIError.invalid(problems) }

        let id = UUID()
        let hash = await hasher.hash(body.password)
        do {
            try await pool.query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, role) VALUES ($1, $2, $3, $4, $5, 'CUSTOMER')",
                [id, body.email, hash, body.firstName, body.lastName])
        } catch let error as PostgresError where error.isUniqueViolation {
            throw APIError.conflict("an account with this email already exists")
        }
        return EditedResponse(status: .created, headers: [.location: "/api/v1/users/\(id.uuidString.lowercased())"],
                              response: UserBody(id: id, email: body.email, firstName: body.firstName, lastName: body.lastName, role: Role.customer.rawValue))
    }

    private func login(_ request: Request, _ context: AppRequestContext) async throws -> TokenBody {
        let (body, _) = try await request.decodeJSON(Credentials.self, context: context)
        let account = body.email.lowercased()
        try await refuseIfThrottled(account: account, address: context.clientAddress)
        let row = try await pool.query(
            "SELECT id, password_hash, role, is_active AND closed_at IS NULL AS is_active FROM users WHERE lower(email) = lower($1)", [body.email]).first
        let hash = try row?.decode(String.self, "password_hash") ?? decoyHash
        let matches = await hasher.verify(body.password, hash: hash)
        guard let row, matches, try row.decode(Bool.self, "is_active"),
              let role = Role(rawValue: try row.decode(String.self, "role"))
        else {
            try await pool.query("INSERT INTO login_failures (account, client_address) VALUES ($1, $2)", [account, context.clientAddress])
            throw APIError.unauthorized("email or password is incorrect")
        }
        try await pool.query("DELETE FROM login_failures WHERE account = $1", [account])
        let userId = try row.decode(UUID.self, "id")
        let refresh = try await pool.withConnection { db in try await Self.issueRefreshToken(userId: userId, family: UUID(), on: db) }
        return TokenBody(
            accessToken: try await tokens.accessToken(userId: userId, role: role), refreshToken: refresh,
            expiresIn: Int(tokens.accessTokenLifetime.components.seconds))
    }

    /// 429 with `Retry-After` once an account or an address has failed too often lately.
    private func refuseIfThrottled(account: String, address: String) async throws {
        let windowSeconds = Int(throttle.window.components.seconds)
        let row = try await pool.query(
            """
            SELECT count(*) FILTER (WHERE account = $1) AS by_account, count(*) FILTER (WHERE client_address = $2) AS by_address,
                   extract(epoch FROM min(failed_at) + make_interval(secs => $3) - now())::int8 AS wait
            FROM login_failures WHERE (account = $1 OR client_address = $2) AND failed_at > now() - make_interval(secs => $3)
            """, [account, address, windowSeconds])[0]
        guard try row.decode(Int.self, "by_account") >= throttle.perAccount || row.decode(Int.self, "by_address") >= throttle.perAddress else { return }
        let wait = max(1, try row.decode(Int?.self, "wait") ?? windowSeconds)
        throw APIError(status: .tooManyRequests, detail: "too many failed sign-ins; try again in \(wait) s", headers: [.retryAfter: String(wait)])
    }

    /// Stores the hash of a new refresh token in `family`; returns the token.
    static func issueRefreshToken(userId: UUID, family: UUID, on db: PostgresConnection) async throws -> String {
        let refresh = TokenService.newRefreshToken()
        try await db.query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4, now() + interval '30 days')",
            [UUID(), userId, family, refresh.hash])
        return refresh.token
    }

    /// Rotation: a refresh token works once and is replaced by a new one of the same family.
    /// Presenting a used or revoked token again means it leaked: the whole family is revoked,
    /// so the thief's and the owner's sessions both end and the owner logs in again.
    private func refresh(_ request: Request, _ context: AppRequestContext) async throws -> TokenBody {
        let (body, _) = try await request.decodeJSON(RefreshRequest.self, context: context)
        let hash = TokenService.hashRefreshToken(body.refreshToken)
        enum Outcome { case issued(String, UUID, Role), reused, invalid }
        let outcome = try await pool.withTransaction { db -> Outcome in
            guard let row = try await db.query(
                """
                SELECT t.id, t.user_id, t.family_id, t.used_at IS NOT NULL OR t.revoked_at IS NOT NULL AS spent,
                       t.expires_at < now() AS expired, u.role, u.is_active AND u.closed_at IS NULL AS is_active
                FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 FOR UPDATE OF t
                """, [hash]).first
            else { return .invalid }
            let family = try row.decode(UUID.self, "family_id")
            if try row.decode(Bool.self, "spent") {
                try await db.query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", [family])
                return .reused
            }
            guard try !row.decode(Bool.self, "expired"), try row.decode(Bool.self, "is_active"),
                  let role = Role(rawValue: try row.decode(String.self, "role")) else { return .invalid }
            try await db.query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", [try row.decode(UUID.self, "id")])
            let userId = try row.decode(UUID.self, "user_id")
            return .issued(try await Self.issueRefreshToken(userId: userId, family: family, on: db), userId, role)
        }
        switch outcome {
        case .issued(let refresh, let userId, let role):
            return TokenBody(accessToken: try await tokens.accessToken(userId: userId, role: role), refreshToken: refresh,
                             expiresIn: Int(tokens.accessTokenLifetime.components.seconds))
        case .reused:
            context.logger.warning("refresh token reused; its family is revoked")
            throw APIError.unauthorized("the refresh token was already used; sign in again")
        case .invalid:
            throw APIError.unauthorized("the refresh token is invalid or expired")
        }
    }

    /// Revokes the refresh token's whole family (this device's session). Idempotent: an
    /// unknown or already revoked token is fine too.
    private func logout(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let (body, _) = try await request.decodeJSON(RefreshRequest.self, context: context)
        try await pool.query(
            """
            UPDATE refresh_tokens SET revoked_at = now()
            WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL
            """, [TokenService.hashRefreshToken(body.refreshToken)])
        return Response(status: .noContent)
    }
}
