import Domain
import Foundation
import Hummingbird
import Messaging

/// Who made the request, from a verified access token.
public struct Identity: Sendable {
    /// The user's id (the token's `sub`).
    public let userId: UUID
    /// The user's role when the token was issued.
    public let role: Role
}

/// The API's request context: snake_case JSON both ways, a 64 KiB body limit, and the
/// caller's identity once ``AuthMiddleware`` has verified it.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthMiddleware``; nil on public routes.
    public var identity: Identity?
    /// The peer's IP address, the key for per-client rate limits.
    public let clientAddress: String

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
