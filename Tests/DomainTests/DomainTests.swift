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
        #expect(OrderStatus.delivered.allowedNext.isEmpty)
        #expect(!OrderStatus.shipped.allowedNext.contains(.cancelled))
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
