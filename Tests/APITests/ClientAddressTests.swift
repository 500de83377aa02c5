import Testing

@testable import API

/// Which address a request comes from, behind proxies or not.
@Suite("Client address and trusted proxies", .timeLimit(.minutes(10)))
struct ClientAddressTests {
    let trusted = ["10.0.0.0/8", "127.0.0.1", "fd00::/8"].compactMap(CIDR.init)

    @Test("networks parse and match, IPv4, IPv6 and IPv4-mapped")
    func networks() throws {
        let network = try #require(CIDR("192.168.0.0/16"))
        #expect(network.contains("192.168.44.3"))
        #expect(!network.contains("192.169.0.1"))
        #expect(network.contains("::ffff:192.168.1.1"))
        #expect(try #require(CIDR("fd00::/8")).contains("fd12:3456::1"))
        #expect(!(try #require(CIDR("fd00::/8")).contains("fe80::1")))
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129"] { #expect(CIDR(bad) == nil, "\(bad)") }
    }

    @Test("the peer is the client unless it is a trusted proxy; then X-Forwarded-For is read from the right, skipping trusted hops")
    func forwardedFor() {
        // An untrusted peer's header is ignored: a client cannot pick its own address.
        #expect(ClientAddressMiddleware.client(peer: "203.0.113.9", forwardedFor: ["198.51.100.1"], trusted: trusted) == "203.0.113.9")
        // Behind a trusted proxy: the rightmost untrusted hop, whatever the client prepended.
        #expect(ClientAddressMiddleware.client(peer: "10.1.2.3", forwardedFor: ["1.1.1.1, 198.51.100.7"], trusted: trusted) == "198.51.100.7")
        #expect(ClientAddressMiddleware.client(peer: "127.0.0.1", forwardedFor: ["198.51.100.7, 10.9.9.9"], trusted: trusted) == "198.51.100.7")
        #expect(ClientAddressMiddleware.client(peer: "10.1.2.3", forwardedFor: ["198.51.100.7", "10.0.0.5"], trusted: trusted) == "198.51.100.7")
        // Garbage ends the trusted chain: the last good hop stands.
        #expect(ClientAddressMiddleware.client(peer: "10.1.2.3", forwardedFor: ["198.51.100.7, not-an-ip"], trusted: trusted) == "10.1.2.3")
        // No header: the proxy itself.
        #expect(ClientAddressMiddleware.client(peer: "10.1.2.3", forwardedFor: [], trusted: trusted) == "10.1.2.3")
    }
}
