import Domain
import Foundation
import Hummingbird

/// Who made the request, from a verified access token checked against the account.
package struct Identity: Sendable {
    /// The user's id (the token's `sub`).
    package let userId: UUID
    /// The user's role: the account's current role once ``AuthMiddleware`` checked it (the
    /// token's role only until then).
    package var role: Role
    /// When the token was issued.
    package var issuedAt: Date = .distantPast
}

/// The API's request context: snake_case JSON both ways, a 64 KiB body limit, and the
/// caller's identity once ``AuthMiddleware`` has verified it.
package struct AppRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    /// Set by ``AuthMiddleware``; nil on public routes.
    package var identity: Identity?
    /// The client's IP address, the key for per-client rate limits and throttling: the TCP
    /// peer, or the address a trusted proxy forwarded (``ClientAddressMiddleware``).
    package var clientAddress: String

    package init(source: Source) {
        self.coreContext = .init(source: source)
        self.identity = nil
        self.clientAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    package var maxUploadSize: Int { 64 * 1024 }
    package var requestDecoder: JSONDecoder { EmporiumJSON.decoder() }
    package var responseEncoder: TreeResponseEncoder { TreeResponseEncoder() }

    /// The verified caller; routes behind ``AuthMiddleware`` always have one.
    func requireIdentity() throws -> Identity {
        guard let identity else { throw APIError.unauthorized("authentication required") }
        return identity
    }
}
