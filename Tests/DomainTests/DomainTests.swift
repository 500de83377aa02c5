import Domain
import Foundation
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

    @Test("a stock batch is planned in arrival order: what one order takes is gone for the next; all lines or none; an order seen twice takes once")
    func stockBatchPlan() {
        let mug = UUID(), pen = UUID(), a = UUID(), b = UUID(), c = UUID(), d = UUID()
        func order(_ id: UUID, _ lines: [OrderLine], pending: Bool = true, reserved: Bool = false) -> StockReservation.PlacedOrder {
            StockReservation.PlacedOrder(orderId: id, lines: lines, pending: pending, reserved: reserved)
        }
        let decisions = StockReservation.plan(
            batch: [
                order(a, [OrderLine(productId: mug, quantity: 1), OrderLine(productId: mug, quantity: 1)]),
                order(b, [OrderLine(productId: mug, quantity: 1), OrderLine(productId: pen, quantity: 1)]),
                order(c, [OrderLine(productId: pen, quantity: 1)]),
                order(a, [OrderLine(productId: mug, quantity: 2)]),
                order(d, [OrderLine(productId: mug, quantity: 1)], pending: false),
                order(d, [OrderLine(productId: pen, quantity: 1)], reserved: true),
            ],
            available: [mug: 2, pen: 1])
        #expect(
            decisions == [
                .take([OrderLine(productId: mug, quantity: 2)]),  // lines of one product summed
                .short(mug),  // the mug went to the first order; the pen it also wants is not taken
                .take([OrderLine(productId: pen, quantity: 1)]),  // still there: the second order took nothing
                .reserved,  // the first order again
                .skip,  // no longer pending
                .reserved,  // reserved before this batch
            ])
        // A product missing from the available stock has none.
        let unknown = UUID()
        #expect(StockReservation.plan(batch: [order(a, [OrderLine(productId: unknown, quantity: 1)])], available: [:]) == [.short(unknown)])
    }
}
