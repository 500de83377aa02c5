import Domain
import Foundation
import Testing

@Suite("Refund rules")
struct RefundRulesTests {
    let shirt = UUID()
    let mug = UUID()
    var ordered: [RefundRules.OrderedLine] {
        [.init(productId: shirt, quantity: 2, unitPriceCents: 2_000), .init(productId: mug, quantity: 1, unitPriceCents: 800)]
    }

    @Test("a refund by line is priced at what was paid per unit, within what is left of each line")
    func byLine() throws {
        let plan = try RefundRules.plan(
            amountCents: nil, lines: [(shirt, 1)], restock: true, ordered: ordered, refundedQuantities: [:], capturedCents: 4_800, committedCents: 0)
        #expect(plan.amountCents == 2_000)
        #expect(plan.lines.map(\.quantity) == [1])
        #expect(throws: RefundRules.Refusal.self) {
            try RefundRules.plan(
                amountCents: nil, lines: [(shirt, 2)], restock: false, ordered: ordered, refundedQuantities: [shirt: 1], capturedCents: 4_800,
                committedCents: 2_000)
        }
        #expect(throws: RefundRules.Refusal.invalid(field: "lines[0].product_id", reason: "is not a line of this order")) {
            try RefundRules.plan(
                amountCents: nil, lines: [(UUID(), 1)], restock: false, ordered: ordered, refundedQuantities: [:], capturedCents: 4_800, committedCents: 0)
        }
    }

    @Test("amounts stay within what was captured less what is refunded or being refunded; restock needs lines")
    func byAmount() throws {
        #expect(
            try RefundRules.plan(
                amountCents: 1_800, lines: nil, restock: false, ordered: ordered, refundedQuantities: [:], capturedCents: 4_800, committedCents: 3_000
            ).amountCents == 1_800)
        #expect(throws: RefundRules.Refusal.exceeds("only 1800 of 4800 is left to refund")) {
            try RefundRules.plan(
                amountCents: 1_801, lines: nil, restock: false, ordered: ordered, refundedQuantities: [:], capturedCents: 4_800, committedCents: 3_000)
        }
        #expect(throws: RefundRules.Refusal.self) {
            try RefundRules.plan(
                amountCents: 100, lines: nil, restock: true, ordered: ordered, refundedQuantities: [:], capturedCents: 4_800, committedCents: 0)
        }
        #expect(throws: RefundRules.Refusal.self) {
            try RefundRules.plan(
                amountCents: 100, lines: [(mug, 1)], restock: false, ordered: ordered, refundedQuantities: [:], capturedCents: 4_800, committedCents: 0)
        }
        #expect(throws: RefundRules.Refusal.self) {
            try RefundRules.plan(amountCents: 0, lines: nil, restock: false, ordered: ordered, refundedQuantities: [:], capturedCents: 4_800, committedCents: 0)
        }
    }
}

@Suite("Webhook signatures")
struct WebhookSignatureTests {
    let body = Data(#"{"id":"evt_1","type":"payment_intent.succeeded"}"#.utf8)
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("a signature made with the secret verifies; the recipe is HMAC-SHA256 of t.body in hex")
    func verifies() throws {
        let header = WebhookSignature.header(for: body, secret: "whsec_test", timestamp: 1_800_000_000)
        #expect(try WebhookSignature.verify(header: header, body: body, secrets: ["whsec_test"], tolerance: .seconds(300), now: now) == 1_800_000_000)
        // A known vector, computed with `printf '1800000000.%s' "$body" | openssl dgst -sha256 -hmac whsec_test`.
        #expect(header == "t=1800000000,v1=bceb87540d9c388c5fcbe6846213e754c3fc9cc0693e96fa471395d650f526c4")
        // While a secret rotates, either secret (or either v1 entry) verifies.
        #expect(throws: Never.self) {
            try WebhookSignature.verify(header: header, body: body, secrets: ["whsec_new", "whsec_test"], tolerance: .seconds(300), now: now)
        }
    }

    @Test("a forged, altered, stale or missing signature is refused")
    func refuses() {
        let header = WebhookSignature.header(for: body, secret: "whsec_test", timestamp: 1_800_000_000)
        #expect(throws: WebhookSignature.Refusal.mismatch) {
            try WebhookSignature.verify(header: header, body: body, secrets: ["whsec_other"], tolerance: .seconds(300), now: now)
        }
        #expect(throws: WebhookSignature.Refusal.mismatch) {
            try WebhookSignature.verify(header: header, body: body + Data(" ".utf8), secrets: ["whsec_test"], tolerance: .seconds(300), now: now)
        }
        #expect(throws: WebhookSignature.Refusal.staleTimestamp) {
            try WebhookSignature.verify(
                header: header, body: body, secrets: ["whsec_test"], tolerance: .seconds(300), now: now.addingTimeInterval(301))
        }
        #expect(throws: WebhookSignature.Refusal.missingHeader) {
            try WebhookSignature.verify(header: nil, body: body, secrets: ["whsec_test"], tolerance: .seconds(300), now: now)
        }
        #expect(throws: WebhookSignature.Refusal.malformedHeader) {
            try WebhookSignature.verify(header: "v1=abc", body: body, secrets: ["whsec_test"], tolerance: .seconds(300), now: now)
        }
    }
}

@Suite("Outbound addresses (SSRF)")
struct OutboundAddressTests {
    @Test("only public unicast addresses are public")
    func publicAddresses() {
        for address in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] { #expect(OutboundAddress.isPublic(address), "\(address)") }
        for address in [
            "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
            "::1", "::", "fd00::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2001:db8::1", "not an address",
        ] {
            #expect(!OutboundAddress.isPublic(address), "\(address)")
        }
    }

    @Test("webhook URLs: the documented shape, https, public hosts; private targets only when allowed")
    func webhookURLs() {
        #expect(OutboundAddress.refusal(ofWebhookURL: "https://93.184.216.34/hooks/emporium", allowPrivate: false) == nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "http://127.0.0.1:41211/hooks/emporium", allowPrivate: true) == nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "https://127.0.0.1:8443/x", allowPrivate: false) != nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "http://93.184.216.34/x", allowPrivate: false) != nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "https://localhost/x", allowPrivate: false) != nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "https://93.184.216.34:65536/x", allowPrivate: true) != nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "https://user:pw@93.184.216.34/x", allowPrivate: true) != nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "https://93.184.216.34/x?token=1", allowPrivate: true) != nil)
        #expect(OutboundAddress.refusal(ofWebhookURL: "", allowPrivate: true) != nil)
    }

    @Test("a webhook target is resolved once and pinned to a checked address, IPv4 first")
    func pinnedTargets() {
        let answers: [String: [String]] = [
            "hooks.example": ["2606:4700::1111", "93.184.216.34"], "v6.example": ["2606:4700::1111"],
            "mixed.example": ["93.184.216.34", "10.0.0.7"], "local.example": ["127.0.0.1"],
            "many.example": ["2606:4700::1111", "93.184.216.35", "93.184.216.34", "93.184.216.35"],
        ]
        func pin(_ url: String, allowPrivate: Bool = false) -> Result<OutboundAddress.PinnedTarget, OutboundAddress.TargetRefusal> {
            OutboundAddress.pinnedTarget(ofWebhookURL: url, allowPrivate: allowPrivate) { answers[$0] ?? [] }
        }
        #expect(pin("https://hooks.example/h") == .success(.init(host: "hooks.example", addresses: ["93.184.216.34", "2606:4700::1111"])))
        #expect(pin("https://v6.example:8443/h") == .success(.init(host: "v6.example", addresses: ["2606:4700::1111"])))
        #expect(pin("https://93.184.216.34/h") == .success(.init(host: "93.184.216.34", addresses: ["93.184.216.34"])))
        // IPv4 in the resolver's order, then IPv6; each address once.
        #expect(pin("https://many.example/h") == .success(.init(host: "many.example", addresses: ["93.184.216.35", "93.184.216.34", "2606:4700::1111"])))
        // One private address among public ones is enough to refuse the name.
        #expect(pin("https://mixed.example/h") == .failure(.init(reason: "host mixed.example resolves to a private, loopback or reserved address")))
        #expect(pin("https://nowhere.example/h") == .failure(.init(reason: "host nowhere.example does not resolve")))
        #expect(pin("http://local.example/h", allowPrivate: true) == .success(.init(host: "local.example", addresses: ["127.0.0.1"])))
        #expect(pin("http://local.example/h") == .failure(.init(reason: "must use https")))
    }
}
