import Credentials
import Domain
import Foundation
import Hummingbird
import HummingbirdBcrypt
import Postgres
import Store

/// Verifies `Authorization: Bearer <access token>`, checks it against the account as it is
/// now, and sets the request's identity with the account's current role. A missing,
/// malformed, forged or expired token is a 401, and so is one whose account is missing,
/// suspended or closed, or was signed out everywhere after the token was issued.
struct AuthMiddleware: RouterMiddleware {
    let tokens: TokenService
    let accounts: AccountDirectory

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard let token = BearerToken.from(request.headers[.authorization]) else {
            throw APIError.unauthorized("a bearer access token is required")
        }
        guard let verified = await tokens.verify(token) else {
            throw APIError.unauthorized("the access token is invalid or expired")
        }
        let identity = try await Self.current(verified, accounts: accounts)
        var context = context
        context.identity = identity
        context.logger[metadataKey: "user.id"] = "\(identity.userId)"
        return try await next(request, context)
    }

    /// The identity a verified token stands for now: 401 unless its account exists, is active
    /// and was not signed out everywhere since the token was issued; the role is the account's.
    static func current(_ verified: Identity, accounts: AccountDirectory) async throws -> Identity {
        guard let account = try await accounts.account(verified.userId), account.isActive else {
            throw APIError.unauthorized("the account behind this token is suspended, closed or gone")
        }
        if let after = account.tokensValidAfter, verified.issuedAt < after {
            throw APIError.unauthorized("this token was signed out; sign in again")
        }
        var identity = verified
        identity.role = account.role
        return identity
    }
}

/// On public routes: a valid `Authorization: Bearer` token of an active account sets the
/// identity (so a route can show its owner or an admin more); none, or an invalid one,
/// leaves the caller anonymous.
struct OptionalAuthMiddleware: RouterMiddleware {
    let tokens: TokenService
    let accounts: AccountDirectory

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard let token = BearerToken.from(request.headers[.authorization]), let verified = await tokens.verify(token),
            let identity = try? await AuthMiddleware.current(verified, accounts: accounts)
        else { return try await next(request, context) }
        var context = context
        context.identity = identity
        return try await next(request, context)
    }
}

/// `POST /api/v1/auth/register`, `login`, `refresh`, `logout` and `logout-all`.
struct AuthController: Sendable {
    let pool: PostgresPool
    let tokens: TokenService
    let hasher: PasswordHasher
    /// A valid hash to verify against when the email is unknown, so both paths cost the same.
    let decoyHash: String
    let throttle: SignInThrottle
    /// Registrations per client address (`REGISTRATIONS_PER_ADDRESS_PER_HOUR`).
    let registrations: RateLimiter
    let accounts: AccountDirectory
    /// A refresh-token family ends this long after its sign-in (`REFRESH_FAMILY_MAX_DAYS`).
    let familyLifetime: Duration
    private let users = UserStore()

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

    func register(on group: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        group.post("register") { request, context in try await register(request, context) }
        group.post("login") { request, context in try await login(request, context) }
        group.post("refresh") { request, context in try await refresh(request, context) }
        group.post("logout") { request, context in try await logout(request, context) }
        authenticated.post("auth/logout-all") { _, context in try await logoutAll(context) }
    }

    static func validate(email: String) -> Bool { FieldRules.isEmail(email) }

    private func register(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<UserBody> {
        let (body, _) = try await request.decodeJSON(Registration.self, context: context)
        let user = try await register(body, clientAddress: context.clientAddress)
        return EditedResponse(status: .created, headers: [.location: "/api/v1/users/\(user.id.uuidString.lowercased())"], response: user)
    }

    /// Creates a CUSTOMER account: the API's sign-up and the storefront's. The rules, the
    /// per-address budget and the duplicate check come before any hashing.
    func register(_ body: Registration, clientAddress: String) async throws -> UserBody {
        var problems: [(String, String)] = []
        if !Self.validate(email: body.email) { problems.append(("email", "must be a valid email address")) }
        problems += Self.passwordProblems(body.password).map { ("password", $0) }
        if !FieldRules.isName(body.firstName, max: 100) { problems.append(("first_name", FieldRules.nameRule(max: 100))) }
        if !FieldRules.isName(body.lastName, max: 100) { problems.append(("last_name", FieldRules.nameRule(max: 100))) }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
        if let retryAfter = registrations.acquire(clientAddress) {
            throw APIError(
                status: .tooManyRequests, detail: "too many registrations from this address; retry after \(retryAfter) s",
                headers: [.retryAfter: String(retryAfter)])
        }
        // A taken email is refused before any hashing. Registration has always told whether an
        // email is registered (409); sign-in never does (the same 401 either way).
        if try await users.emailTaken(body.email, on: pool) {
            throw APIError.conflict("an account with this email already exists")
        }
        let id = UUID()
        let hash = try await hasher.hash(body.password)
        do {
            try await users.create(id: id, email: body.email, passwordHash: hash, firstName: body.firstName, lastName: body.lastName, role: .customer, on: pool)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw APIError.conflict("an account with this email already exists")
        }
        return UserBody(id: id, email: body.email, firstName: body.firstName, lastName: body.lastName, role: Role.customer.rawValue)
    }

    private func login(_ request: Request, _ context: AppRequestContext) async throws -> TokenBody {
        let (body, _) = try await request.decodeJSON(Credentials.self, context: context)
        let (userId, role) = try await PasswordSignIn(pool: pool, hasher: hasher, decoyHash: decoyHash, throttle: throttle)
            .verify(email: body.email, password: body.password, clientAddress: context.clientAddress)
        let refresh = try await pool.withConnection { db in try await issueRefreshToken(userId: userId, family: UUID(), startedAt: nil, on: db) }
        return TokenBody(
            accessToken: try await tokens.accessToken(userId: userId, role: role), refreshToken: refresh,
            expiresIn: Int(tokens.accessTokenLifetime.components.seconds))
    }

    /// Stores the hash of a new refresh token in `family` (begun at `startedAt`, or now for a
    /// new sign-in); returns the token.
    private func issueRefreshToken(userId: UUID, family: UUID, startedAt: Date?, on db: PostgresConnection) async throws -> String {
        let refresh = TokenService.newRefreshToken()
        try await users.storeRefreshToken(hash: refresh.hash, userId: userId, family: family, startedAt: startedAt, on: db)
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
            switch try await users.rotate(hash: hash, familyLifetime: familyLifetime, on: db) {
            case .valid(let userId, let role, let family, let startedAt):
                return .issued(try await issueRefreshToken(userId: userId, family: family, startedAt: startedAt, on: db), userId, role)
            case .reused: return .reused
            case .invalid: return .invalid
            }
        }
        switch outcome {
        case .issued(let refresh, let userId, let role):
            return TokenBody(
                accessToken: try await tokens.accessToken(userId: userId, role: role), refreshToken: refresh,
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
        try await users.revokeFamily(ofTokenHash: TokenService.hashRefreshToken(body.refreshToken), on: pool)
        return Response(status: .noContent)
    }

    /// Signs the caller out everywhere: every refresh token of the account is revoked and
    /// every access token issued until now is refused from now on.
    private func logoutAll(_ context: AppRequestContext) async throws -> Response {
        let userId = try context.requireIdentity().userId
        try await users.signOutEverywhere(userId, on: pool)
        accounts.invalidate(userId)
        return Response(status: .noContent)
    }
}
