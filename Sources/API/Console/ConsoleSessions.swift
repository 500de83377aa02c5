import Crypto
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import Store

/// Who is looking at a console page: the signed-in staff member, their session's CSRF token
/// and the session's key.
struct ConsoleViewer: Sendable {
    let userId: UUID
    let role: Role
    let csrfToken: String
    let tokenHash: String

    var isAdmin: Bool { role.isAdmin }
}

/// Cookie sessions for the console (and the storefront's customers, later): a random token
/// in an `HttpOnly`, `SameSite=Strict` cookie scoped to its path, `Secure` over TLS; its
/// SHA-256 and a CSRF token stored server-side with idle and absolute expiry, so signing out,
/// a suspension or a role change ends it at once.
struct ConsoleSessions: Sendable {
    static let cookieName = "emporium_console"
    /// Before sign-in, the login form's CSRF token is a double-submit cookie.
    static let loginCookieName = "emporium_console_login"

    let pool: PostgresPool
    let accounts: AccountDirectory
    let settings: ConsoleSettings
    private let store = ConsoleSessionStore()

    init(pool: PostgresPool, accounts: AccountDirectory, settings: ConsoleSettings) {
        self.pool = pool
        self.accounts = accounts
        self.settings = settings
    }

    /// 32 random bytes as hex: session tokens and CSRF tokens.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    static func hash(_ token: String) -> String { SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined() }

    /// Starts a session for `userId`; the cookie to set.
    func open(userId: UUID, secure: Bool) async throws -> String {
        let token = Self.randomToken()
        try await store.create(
            tokenHash: Self.hash(token), userId: userId, csrfToken: Self.randomToken(),
            expiresAt: Date().addingTimeInterval(TimeInterval(settings.absoluteExpiry.components.seconds)), on: pool)
        return cookie(Self.cookieName, value: token, maxAge: Int(settings.absoluteExpiry.components.seconds), secure: secure)
    }

    /// The viewer of `request` when its cookie names a live session of an active staff account
    /// (ADMIN, SUPERADMIN or SELLER); nil otherwise.
    func viewer(_ request: Request) async throws -> ConsoleViewer? {
        guard let token = Self.cookieValue(Self.cookieName, in: request), token.count == 64 else { return nil }
        let tokenHash = Self.hash(token)
        guard let session = try await store.touch(tokenHash: tokenHash, idle: settings.idleExpiry, on: pool) else { return nil }
        // The account as it is now: a suspension, closure, demotion or sign-out everywhere
        // ends console access even before the session's revocation reaches this replica.
        guard let account = try await accounts.account(session.userId), account.isActive,
            account.role.isAdmin || account.role == .seller,
            account.tokensValidAfter.map({ session.createdAt >= $0 }) ?? true
        else { return nil }
        return ConsoleViewer(userId: session.userId, role: account.role, csrfToken: session.csrfToken, tokenHash: tokenHash)
    }

    /// Ends the viewer's session; the cookie that clears it in the browser.
    func close(_ viewer: ConsoleViewer, secure: Bool) async throws -> String {
        try await store.revoke(tokenHash: viewer.tokenHash, on: pool)
        return cookie(Self.cookieName, value: "", maxAge: 0, secure: secure)
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/admin`.
    func cookie(_ name: String, value: String, maxAge: Int, secure: Bool) -> String {
        "\(name)=\(value); Path=/admin; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// Whether the cookie gets `Secure`: as configured, else when the request came over TLS
    /// (a trusted proxy's `X-Forwarded-Proto: https`).
    func secure(_ request: Request) -> Bool {
        settings.secureCookie ?? (request.headers[HTTPField.Name("X-Forwarded-Proto")!] == "https")
    }

    /// The value of cookie `name` in `request`, if sent.
    static func cookieValue(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == name { return String(parts[1]) }
            }
        }
        return nil
    }

    /// Compares two tokens in constant time.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
