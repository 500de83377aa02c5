import Domain
import Foundation
import Hummingbird
import Messaging

/// Who made the request, from a verified access token checked against the account.
public struct Identity: Sendable {
    /// The user's id (the token's `sub`).
    public let userId: UUID
    /// The user's role: the account's current role once ``AuthMiddleware`` checked it (the
    /// token's role only until then).
    public var role: Role
    /// When the token was issued.
    public var issuedAt: Date = .distantPast
}

/// The API's request context: snake_case JSON both ways, a 64 KiB body limit, and the
/// caller's identity once ``AuthMiddleware`` has verified it.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthMiddleware``; nil on public routes.
    public var identity: Identity?
    /// The client's IP address, the key for per-client rate limits and throttling: the TCP
    /// peer, or the address a trusted proxy forwarded (``ClientAddressMiddleware``).
    public var clientAddress: String

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.identity = nil
        self.clientAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    public var maxUploadSize: Int { 64 * 1024 }
    public var requestDecoder: JSONDecoder { EmporiumJSON.decoder() }
    public var responseEncoder: JSONEncoder { EmporiumJSON.encoder() }

    /// The verified caller; routes behind ``AuthMiddleware`` always have one.
    func requireIdentity() throws -> Identity {
        guard let identity else { throw APIError.unauthorized("authentication required") }
        return identity
    }
}
