/// Where an order is in its life.
package enum OrderStatus: String, Sendable, Codable, CaseIterable {
    /// Placed; stock not yet reserved.
    case pending = "PENDING"
    /// Stock reserved; waiting for the charge.
    case awaitingPayment = "AWAITING_PAYMENT"
    /// Paid; stock committed.
    case confirmed = "CONFIRMED"
    /// Handed to the carrier.
    case shipped = "SHIPPED"
    /// Received by the customer.
    case delivered = "DELIVERED"
    /// Stopped; see ``CancellationReason``.
    case cancelled = "CANCELLED"
    /// Part of the captured amount was refunded; the order may still ship and be delivered.
    case partiallyRefunded = "PARTIALLY_REFUNDED"
    /// All of the captured amount was refunded.
    case refunded = "REFUNDED"

    /// The states an order may move to from this one.
    package var allowedNext: Set<OrderStatus> {
        switch self {
        case .pending: [.awaitingPayment, .cancelled]
        case .awaitingPayment: [.confirmed, .cancelled]
        case .confirmed: [.shipped, .cancelled, .partiallyRefunded, .refunded]
        case .shipped: [.delivered, .partiallyRefunded, .refunded]
        case .delivered: [.partiallyRefunded, .refunded]
        case .partiallyRefunded: [.shipped, .delivered, .refunded]
        case .refunded, .cancelled: []
        }
    }

    /// The states from which `target` may be reached: the `allowed_from` list of the
    /// conditional `UPDATE ... WHERE status = ANY(...)` that moves an order.
    package static func allowedSources(of target: OrderStatus) -> [OrderStatus] {
        allCases.filter { $0.allowedNext.contains(target) }
    }

    /// Whether the saga is finished with the order (nothing more happens on its own).
    package var isTerminal: Bool { self != .pending && self != .awaitingPayment }

    /// Whether money was captured for the order and may be refunded in part or whole.
    package var isRefundable: Bool { [.confirmed, .shipped, .delivered, .partiallyRefunded].contains(self) }

    /// The status an order in a refundable state moves to once `refundedCents` of
    /// `capturedCents` have been refunded.
    package static func afterRefund(refundedCents: Int, capturedCents: Int) -> OrderStatus {
        refundedCents >= capturedCents ? .refunded : .partiallyRefunded
    }
}

/// Why an order was cancelled.
package enum CancellationReason: String, Sendable, Codable, CaseIterable {
    /// Some line could not be reserved.
    case outOfStock = "out_of_stock"
    /// The payment provider declined the charge.
    case paymentFailed = "payment_failed"
    /// The customer cancelled.
    case customer = "customer"
    /// Payment did not arrive in time.
    case expired = "expired"
}
