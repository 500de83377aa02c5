import Crypto
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import Store

/// Who is looking at a page: the signed-in account, their session's CSRF token and the
/// session's key.
struct SessionViewer: Sendable {
    let userId: UUID
    let role: Role
    let csrfToken: String
    let tokenHash: String

    var isAdmin: Bool { role.isAdmin }
    var identity: Identity { Identity(userId: userId, role: role) }
}

/// Cookie sessions for the browser faces, the operator console and the storefront: a random
/// token in an `HttpOnly`, `SameSite` cookie scoped to its face's path, `Secure` over TLS; its
/// SHA-256 and a CSRF token stored server-side with idle and absolute expiry, so signing out,
/// a suspension or a role change ends it at once.
struct WebSessions: Sendable {
    /// Which face a session belongs to; a session of one is never accepted by the other.
    enum Kind: String, Sendable {
        /// `/admin`: staff only, `SameSite=Strict`.
        case console
        /// `/`: any active account. `SameSite=Lax`, so a customer following a link to the shop
        /// from elsewhere arrives signed in; every change is a POST with a CSRF token.
        case shop

        var cookieName: String { self == .console ? "emporium_console" : "emporium_shop" }
        /// Before sign-in, the sign-in and sign-up forms' CSRF token is a double-submit cookie.
        var formCookieName: String { cookieName + "_form" }
        var path: String { self == .console ? "/admin" : "/" }
        var sameSite: String { self == .console ? "Strict" : "Lax" }
    }

    let kind: Kind
    let pool: PostgresPool
    let accounts: AccountDirectory
    let settings: ConsoleSettings
    private let store = ConsoleSessionStore()

    init(kind: Kind, pool: PostgresPool, accounts: AccountDirectory, settings: ConsoleSettings) {
        self.kind = kind
        self.pool = pool
        self.accounts = accounts
        self.settings = settings
    }

    /// The console's pre-sign-in cookie (kept for the console's pages).
    var loginCookieName: String { kind.formCookieName }

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
            tokenHash: Self.hash(token), userId: userId, scope: kind.rawValue, csrfToken: Self.randomToken(),
            expiresAt: Date().addingTimeInterval(TimeInterval(settings.absoluteExpiry.components.seconds)), on: pool)
        return cookie(kind.cookieName, value: token, maxAge: Int(settings.absoluteExpiry.components.seconds), secure: secure)
    }

    /// The viewer of `request` when its cookie names a live session of this kind whose account
    /// is active (and, for the console, staff: ADMIN, SUPERADMIN or SELLER); nil otherwise.
    func viewer(_ request: Request) async throws -> SessionViewer? {
        guard let token = Self.cookieValue(kind.cookieName, in: request), token.count == 64 else { return nil }
        let tokenHash = Self.hash(token)
        guard let session = try await store.touch(tokenHash: tokenHash, scope: kind.rawValue, idle: settings.idleExpiry, on: pool) else { return nil }
        // The account as it is now: a suspension, closure, demotion or sign-out everywhere
        // ends the session even before its revocation reaches this replica.
        guard let account = try await accounts.account(session.userId), account.isActive,
            kind == .shop || account.role.isAdmin || account.role == .seller,
            account.tokensValidAfter.map({ session.createdAt >= $0 }) ?? true
        else { return nil }
        return SessionViewer(userId: session.userId, role: account.role, csrfToken: session.csrfToken, tokenHash: tokenHash)
    }

    /// Ends the viewer's session; the cookie that clears it in the browser.
    func close(_ viewer: SessionViewer, secure: Bool) async throws -> String {
        try await store.revoke(tokenHash: viewer.tokenHash, on: pool)
        return cookie(kind.cookieName, value: "", maxAge: 0, secure: secure)
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite as the kind says, the kind's path.
    func cookie(_ name: String, value: String, maxAge: Int, secure: Bool) -> String {
        "\(name)=\(value); Path=\(kind.path); Max-Age=\(maxAge); HttpOnly; SameSite=\(kind.sameSite)" + (secure ? "; Secure" : "")
    }

    /// Whether the cookie gets `Secure`: as configured, else when the request says it came
    /// over TLS (`X-Forwarded-Proto: https`, as a TLS-terminating proxy sets it).
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
