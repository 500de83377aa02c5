import Foundation
import HTTPTypes
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare address is a
/// single host).
struct CIDR: Sendable, Hashable, CustomStringConvertible {
    let network: [UInt8]
    let prefix: Int

    /// Parses `text`; nil when it is not a network.
    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
        guard let address = parts.first, let bytes = CIDR.bytes(of: address) else { return nil }
        let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
        guard let prefix, (0...(bytes.count * 8)).contains(prefix) else { return nil }
        self.network = bytes
        self.prefix = prefix
    }

    /// Whether `address` (text) lies in this network.
    func contains(_ address: String) -> Bool {
        guard let bytes = CIDR.bytes(of: address), bytes.count == network.count else { return false }
        for bit in 0..<prefix {
            let mask = UInt8(0x80) >> UInt8(bit % 8)
            if bytes[bit / 8] & mask != network[bit / 8] & mask { return false }
        }
        return true
    }

    var description: String { "\(network)/\(prefix)" }

    /// The address's bytes (4 for IPv4, 16 for IPv6; an IPv4-mapped IPv6 address as IPv4).
    static func bytes(of address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return Array(bytes[12...]) }
        return bytes
    }
}

/// Decides the client's address: the TCP peer, unless the peer is a trusted proxy
/// (`TRUSTED_PROXIES`), in which case `X-Forwarded-For` is read from the right, skipping
/// trusted proxies, and the first address that is not one is the client. Everything that
/// keys on the client (rate limits, sign-in throttling, registration budgets) uses it.
struct ClientAddressMiddleware: RouterMiddleware {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    let trusted: [CIDR]

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        guard !trusted.isEmpty else { return try await next(request, context) }
        var context = context
        context.clientAddress = Self.client(peer: context.clientAddress, forwardedFor: request.headers[values: Self.forwardedFor], trusted: trusted)
        return try await next(request, context)
    }

    /// The client behind `peer`, given the `X-Forwarded-For` header lines (in order).
    static func client(peer: String, forwardedFor: [String], trusted: [CIDR]) -> String {
        guard trusted.contains(where: { $0.contains(peer) }) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        var client = peer
        for hop in hops.reversed() {
            guard CIDR.bytes(of: hop) != nil else { break }  // garbage: stop trusting the chain here
            client = hop
            if !trusted.contains(where: { $0.contains(hop) }) { break }
        }
        return client
    }
}
