import Domain
import Testing

@Suite("Order state machine", .timeLimit(.minutes(10)))
struct DomainTests {
    @Test("the saga's transitions are allowed and nothing leaves a final state")
    func transitions() {
        #expect(OrderStatus.pending.allowedNext == [.awaitingPayment, .cancelled])
        #expect(OrderStatus.allowedSources(of: .confirmed) == [.awaitingPayment])
        #expect(Set(OrderStatus.allowedSources(of: .cancelled)) == [.pending, .awaitingPayment, .confirmed])
        #expect(OrderStatus.cancelled.allowedNext.isEmpty)
        #expect(OrderStatus.refunded.allowedNext.isEmpty)
        // A delivered order only moves when money goes back.
        #expect(OrderStatus.delivered.allowedNext == [.partiallyRefunded, .refunded])
        #expect(!OrderStatus.shipped.allowedNext.contains(.cancelled))
        #expect(!OrderStatus.partiallyRefunded.allowedNext.contains(.cancelled))
        // Money is refunded only once captured.
        #expect(Set(OrderStatus.allowedSources(of: .partiallyRefunded)) == [.confirmed, .shipped, .delivered])
        #expect(OrderStatus.afterRefund(refundedCents: 300, capturedCents: 1_000) == .partiallyRefunded)
        #expect(OrderStatus.afterRefund(refundedCents: 1_000, capturedCents: 1_000) == .refunded)
    }

    @Test("money checks currency codes and overflow")
    func money() {
        #expect(Money.isValidCurrency("EUR"))
        #expect(!Money.isValidCurrency("eur"))
        #expect(!Money.isValidCurrency("EURO"))
        #expect(Money.lineTotal(unitCents: 250, quantity: 4) == 1000)
        #expect(Money.lineTotal(unitCents: Int.max, quantity: 2) == nil)
    }
}
