import Foundation

/// Which addresses an outbound request (a merchant webhook) may reach: public ones only, so
/// an endpoint URL cannot make Emporium call its own database, the cloud's metadata service
/// or anything else on a private network (SSRF).
package enum OutboundAddress {
    /// ``refusal(ofWebhookURL:allowPrivate:)`` off Swift's cooperative threads: resolving a host
    /// name is a blocking call that can take seconds when DNS is slow.
    package static func checkWebhookURL(_ url: String, allowPrivate: Bool) async -> String? {
        await offCooperativeThreads { refusal(ofWebhookURL: url, allowPrivate: allowPrivate) }
    }

    /// ``pinnedTarget(ofWebhookURL:allowPrivate:resolve:)`` off Swift's cooperative threads.
    package static func pinWebhookURL(
        _ url: String, allowPrivate: Bool, resolve: @escaping @Sendable (String) -> [String] = OutboundAddress.resolve
    ) async -> Result<PinnedTarget, TargetRefusal> {
        await offCooperativeThreads { pinnedTarget(ofWebhookURL: url, allowPrivate: allowPrivate, resolve: resolve) }
    }

    /// Why `url` may not be a merchant webhook target; nil when it may: an absolute https URL
    /// without credentials whose host resolves to public addresses only. With `allowPrivate`
    /// (local development and tests), http and any address are allowed, and the host is not
    /// resolved (an endpoint may be saved before its host exists).
    package static func refusal(ofWebhookURL url: String, allowPrivate: Bool) -> String? {
        switch host(ofWebhookURL: url, allowPrivate: allowPrivate) {
        case .failure(let refusal): return refusal.reason
        case .success where allowPrivate: return nil
        case .success(let host):
            if case .failure(let refusal) = pin(host, allowPrivate: false, resolve: resolve) { return refusal.reason }
            return nil
        }
    }

    /// Where one attempt to deliver a webhook connects: the URL's host, and the addresses that
    /// were checked for it, in the order to dial them.
    ///
    /// The attempt dials those addresses while still naming the host (for `Host` and TLS), so
    /// a name that resolves to a public address when it is checked and to a private one a
    /// moment later, when the HTTP client would resolve it again (DNS rebinding), cannot steer
    /// the request into the private network.
    package struct PinnedTarget: Sendable, Equatable {
        /// The host as the URL names it.
        package let host: String
        /// Every checked address, IPv4 first (then in the resolver's order), without repeats:
        /// the attempt dials the first, and the next only when a connection could not be made.
        package let addresses: [String]
        /// A target: `host` dialled at `addresses` (``pinnedTarget(ofWebhookURL:allowPrivate:resolve:)``
        /// never makes one without an address).
        package init(host: String, addresses: [String]) {
            self.host = host
            self.addresses = addresses
        }
    }

    /// Why a webhook URL may not be called.
    package struct TargetRefusal: Error, Equatable, CustomStringConvertible {
        /// The reason, for the delivery's record.
        package let reason: String
        package var description: String { reason }
        /// A refusal for `reason`.
        package init(reason: String) { self.reason = reason }
    }

    /// The target `url` may be called at: its host resolved once with `resolve`, every
    /// address public (unless `allowPrivate`), and those addresses pinned for the connection,
    /// IPv4 first. Fails as ``refusal(ofWebhookURL:allowPrivate:)`` does, and also when the
    /// host does not resolve.
    package static func pinnedTarget(
        ofWebhookURL url: String, allowPrivate: Bool, resolve: (String) -> [String] = OutboundAddress.resolve
    ) -> Result<PinnedTarget, TargetRefusal> {
        host(ofWebhookURL: url, allowPrivate: allowPrivate).flatMap { pin($0, allowPrivate: allowPrivate, resolve: resolve) }
    }

    /// The host of a URL of the documented shape and an allowed scheme.
    private static func host(ofWebhookURL url: String, allowPrivate: Bool) -> Result<String, TargetRefusal> {
        // The shape the API contract documents: a host name or IPv4 address, an optional port
        // and path; no credentials, query or fragment.
        guard url.count <= 2_048, url.wholeMatch(of: webhookURLShape) != nil,
            let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), let host = parsed.host, !host.isEmpty
        else {
            return .failure(TargetRefusal(reason: "must be an http(s) URL of a host name or IPv4 address, an optional port and path"))
        }
        guard scheme == "https" || (allowPrivate && scheme == "http") else { return .failure(TargetRefusal(reason: "must use https")) }
        return .success(host)
    }

    /// Resolves `host` once and picks the address to connect to, if every address may be called.
    private static func pin(_ host: String, allowPrivate: Bool, resolve: (String) -> [String]) -> Result<PinnedTarget, TargetRefusal> {
        // An address is its own answer; only a name is looked up.
        let addresses = ipv4(host) != nil || ipv6(host) != nil ? [host] : resolve(host)
        guard !addresses.isEmpty else { return .failure(TargetRefusal(reason: "host \(host) does not resolve")) }
        // All of them, not only the one dialled: a refused name stays refused whichever
        // address a resolver would have answered first.
        guard allowPrivate || addresses.allSatisfy(isPublic) else {
            return .failure(TargetRefusal(reason: "host \(host) resolves to a private, loopback or reserved address"))
        }
        // IPv4 first: where a host has both, IPv6 is the likelier to be unroutable from here.
        var ordered: [String] = []
        for address in addresses.filter({ ipv4($0) != nil }) + addresses.filter({ ipv4($0) == nil }) where !ordered.contains(address) {
            ordered.append(address)
        }
        return .success(PinnedTarget(host: host, addresses: ordered))
    }

    /// Runs `work` (which may block on DNS) on a Dispatch thread and returns its result.
    private static func offCooperativeThreads<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }

    /// The documented shape of a webhook URL (the OpenAPI document's pattern): scheme, a host
    /// name or IPv4 address, a port up to 65535, a path.
    nonisolated(unsafe) static let webhookURLShape =
        /https?:\/\/[A-Za-z0-9.\-]+(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?(\/[A-Za-z0-9._~\/\-]*)?/

    /// Whether `address` (IPv4 dotted or IPv6 text) is a public unicast address.
    package static func isPublic(_ address: String) -> Bool {
        if let v4 = ipv4(address) { return isPublicV4(v4) }
        guard let bytes = ipv6(address) else { return false }
        // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms are judged as IPv4.
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return isPublicV4(Array(bytes[12..<16])) }
        if bytes[0..<12].allSatisfy({ $0 == 0 }) { return false }  // ::, ::1 and the deprecated compatible form
        let first = bytes[0]
        if first == 0xff { return false }  // multicast
        if first & 0xfe == 0xfc { return false }  // fc00::/7 unique local
        if first == 0xfe && bytes[1] & 0xc0 == 0x80 { return false }  // fe80::/10 link-local
        if first == 0xfe && bytes[1] & 0xc0 == 0xc0 { return false }  // fec0::/10 site-local
        if first == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0d && bytes[3] == 0xb8 { return false }  // 2001:db8::/32 documentation
        return first & 0xe0 == 0x20  // 2000::/3 global unicast
    }

    private static func isPublicV4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): return false  // this network, private, loopback
        case (100, 64...127): return false  // carrier-grade NAT
        case (169, 254): return false  // link-local, cloud metadata
        case (172, 16...31), (192, 168): return false  // private
        case (192, 0) where b[2] == 0 || b[2] == 2: return false  // IETF, documentation
        case (198, 18...19): return false  // benchmarking
        case (198, 51) where b[2] == 100, (203, 0) where b[2] == 113: return false  // documentation
        case (224...255, _): return false  // multicast, reserved, broadcast
        default: return true
        }
    }

    private static func ipv4(_ text: String) -> [UInt8]? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    private static func ipv6(_ text: String) -> [UInt8]? {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    /// The addresses `host` resolves to (or `host` itself when it is an address).
    package static func resolve(_ host: String) -> [String] {
        if ipv4(host) != nil || ipv6(host) != nil { return [host] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                addresses.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            cursor = info.pointee.ai_next
        }
        return Array(Set(addresses)).sorted()
    }
}
