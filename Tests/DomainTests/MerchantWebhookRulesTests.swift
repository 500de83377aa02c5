import Domain
import Testing

@Suite("Merchant webhook subscriptions")
struct MerchantWebhookRulesTests {
    /// Every pattern an endpoint may subscribe to (``MerchantWebhooks/isValidPattern(_:)``),
    /// plus patterns it may not, which must receive nothing.
    var candidates: [String] {
        ["*", "order.*", "payment.*", "refund.*"] + MerchantWebhooks.eventTypes.map(\.rawValue) + ["stock.*", "stock.reserved", "order", "order.", ".*", ""]
    }

    @Test("an event is received by `*`, by its own type and by its family, and by nothing else")
    func receivers() {
        #expect(MerchantWebhooks.patterns(receiving: "order.placed") == ["*", "order.placed", "order.*"])
        #expect(MerchantWebhooks.patterns(receiving: "payment.refund.requested") == ["*", "payment.refund.requested", "payment.refund.*", "payment.*"])
        for type in MerchantWebhooks.eventTypes.map(\.rawValue) {
            let family = String(type[..<type.firstIndex(of: ".")!]) + ".*"
            let receiving = Set(MerchantWebhooks.patterns(receiving: type))
            for pattern in candidates {
                let expected = pattern == "*" || pattern == type || pattern == family
                #expect(receiving.contains(pattern) == expected, "\(pattern) for \(type)")
            }
        }
    }
}
