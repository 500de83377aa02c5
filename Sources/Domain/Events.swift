import Foundation

/// The saga's events (ARCHITECTURE.md, "Event flow"): each type is also the AMQP routing key,
/// and each has a payload struct below.
package enum EventType: String, Sendable, CaseIterable, Codable {
    /// ``OrderPlaced``: a customer placed an order; stock is next.
    case orderPlaced = "order.placed"
    /// ``OrderOutcome``: paid and reserved.
    case orderConfirmed = "order.confirmed"
    /// ``OrderOutcome`` with the reason.
    case orderCancelled = "order.cancelled"
    /// ``OrderOutcome``: handed to the carrier.
    case orderShipped = "order.shipped"
    /// ``OrderOutcome``: received.
    case orderDelivered = "order.delivered"
    /// ``StockOutcome``: every line reserved.
    case stockReserved = "stock.reserved"
    /// ``StockOutcome``: a line could not be reserved.
    case stockRejected = "stock.rejected"
    /// ``PaymentRequested``: the order worker asks for the charge.
    case paymentRequested = "payment.requested"
    /// ``PaymentOutcome``.
    case paymentSucceeded = "payment.succeeded"
    /// ``PaymentOutcome`` with the decline code.
    case paymentFailed = "payment.failed"
    /// ``PaymentRefunded``.
    case paymentRefunded = "payment.refunded"
    /// ``OrderOutcome``: a charge arrived for an order that was cancelled meanwhile: give the money back.
    case paymentRefundRequested = "payment.refund_requested"
    /// ``RefundRequested``: an admin asked for a (partial) refund, recorded as a PENDING refund.
    case refundRequested = "refund.requested"
    /// ``ProviderEventReceived``: the payment provider told Emporium something (a verified webhook).
    case providerEventReceived = "payment.provider_event"
    /// ``WebhookDeliveryRequested``: send a merchant webhook delivery again (a replayed dead letter).
    case webhookDelivery = "webhook.delivery"

    /// The order status this event announces, when emitting it means the order just moved
    /// there (`payment.requested` is sent as the order enters AWAITING_PAYMENT). Logs keep
    /// one info line per such change and put everything else per message at debug.
    package var announcedOrderStatus: OrderStatus? {
        switch self {
        case .orderPlaced: .pending
        case .paymentRequested: .awaitingPayment
        case .orderConfirmed: .confirmed
        case .orderCancelled: .cancelled
        case .orderShipped: .shipped
        case .orderDelivered: .delivered
        case .stockReserved, .stockRejected, .paymentSucceeded, .paymentFailed, .paymentRefunded, .paymentRefundRequested, .refundRequested,
            .providerEventReceived, .webhookDelivery:
            nil
        }
    }
}

/// A line of an order as the stock worker needs it.
package struct OrderLine: Sendable, Codable, Hashable {
    package var productId: UUID
    package var quantity: Int
    package init(productId: UUID, quantity: Int) {
        self.productId = productId
        self.quantity = quantity
    }

    enum CodingKeys: String, CodingKey { case productId, quantity }

    /// Decodes a line of an event, which must want at least one unit: the stock worker takes
    /// what a placement's lines want and gives back what a refund's lines restock, so a
    /// message whose line says 0 or -5 (forged, or from a bug) would give stock away or take
    /// it back. Such a message is undecodable, which dead-letters it.
    package init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        productId = try container.decode(UUID.self, forKey: .productId)
        quantity = try container.decode(Int.self, forKey: .quantity)
        guard quantity > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .quantity, in: container, debugDescription: "a line's quantity must be at least 1, not \(quantity)")
        }
    }
}

/// `order.placed`: a customer placed an order; stock is next.
package struct OrderPlaced: Sendable, Codable {
    package var orderId: UUID
    package var userId: UUID
    package var totalCents: Int
    package var currency: String
    package var paymentMethod: String
    package var lines: [OrderLine]
    package init(orderId: UUID, userId: UUID, totalCents: Int, currency: String, paymentMethod: String, lines: [OrderLine]) {
        self.orderId = orderId
        self.userId = userId
        self.totalCents = totalCents
        self.currency = currency
        self.paymentMethod = paymentMethod
        self.lines = lines
    }
}

/// `stock.reserved` / `stock.rejected`: the stock worker's answer to `order.placed`.
package struct StockOutcome: Sendable, Codable {
    package var orderId: UUID
    /// For a rejection, the first product that was short.
    package var productId: UUID?
    package init(orderId: UUID, productId: UUID? = nil) {
        self.orderId = orderId
        self.productId = productId
    }
}

/// `payment.requested`: the order worker asks for the charge.
package struct PaymentRequested: Sendable, Codable {
    package var orderId: UUID
    package var userId: UUID
    package var amountCents: Int
    package var currency: String
    package var paymentMethod: String
    package init(orderId: UUID, userId: UUID, amountCents: Int, currency: String, paymentMethod: String) {
        self.orderId = orderId
        self.userId = userId
        self.amountCents = amountCents
        self.currency = currency
        self.paymentMethod = paymentMethod
    }
}

/// `payment.succeeded` / `payment.failed`.
package struct PaymentOutcome: Sendable, Codable {
    package var orderId: UUID
    package var paymentId: UUID
    package var reason: String?
    package init(orderId: UUID, paymentId: UUID, reason: String? = nil) {
        self.orderId = orderId
        self.paymentId = paymentId
        self.reason = reason
    }
}

/// `order.confirmed` / `order.cancelled`.
package struct OrderOutcome: Sendable, Codable {
    package var orderId: UUID
    package var userId: UUID
    package var reason: String?
    package init(orderId: UUID, userId: UUID, reason: String? = nil) {
        self.orderId = orderId
        self.userId = userId
        self.reason = reason
    }
}

/// `payment.refunded`.
package struct PaymentRefunded: Sendable, Codable {
    package var orderId: UUID
    package var paymentId: UUID
    package var refundId: UUID
    package var amountCents: Int
    package var currency: String
    /// All refunded of the payment so far, this refund included (absent in events from before
    /// partial refunds: then the refund was the whole payment).
    package var refundedCents: Int?
    /// What was captured.
    package var capturedCents: Int?
    /// The lines that go back to stock (the stock worker returns them once).
    package var restock: [OrderLine]?
    package init(
        orderId: UUID, paymentId: UUID, refundId: UUID, amountCents: Int, currency: String, refundedCents: Int? = nil, capturedCents: Int? = nil,
        restock: [OrderLine]? = nil
    ) {
        self.orderId = orderId
        self.paymentId = paymentId
        self.refundId = refundId
        self.amountCents = amountCents
        self.currency = currency
        self.refundedCents = refundedCents
        self.capturedCents = capturedCents
        self.restock = restock
    }
}

/// `refund.requested`: an admin's refund, recorded as PENDING with its amount and lines.
package struct RefundRequested: Sendable, Codable {
    package var orderId: UUID
    package var refundId: UUID
    package init(orderId: UUID, refundId: UUID) {
        self.orderId = orderId
        self.refundId = refundId
    }
}

/// `payment.provider_event`: a webhook from the payment provider, verified and recorded once.
/// The payment worker does not trust its body beyond the ids: it asks the provider for the
/// object's state.
package struct ProviderEventReceived: Sendable, Codable {
    /// The provider's event id (`evt_…`).
    package var eventId: String
    /// The provider's event type, e.g. `payment_intent.succeeded`.
    package var type: String
    /// The PaymentIntent the event concerns (`pi_…`), when it names one.
    package var paymentIntent: String?
    /// Emporium's order id from the object's metadata, when present.
    package var orderId: UUID?
    package init(eventId: String, type: String, paymentIntent: String?, orderId: UUID?) {
        self.eventId = eventId
        self.type = type
        self.paymentIntent = paymentIntent
        self.orderId = orderId
    }
}

/// `webhook.delivery`: a merchant webhook delivery given up and dead-lettered; replayed, it is
/// sent again with a fresh set of attempts.
package struct WebhookDeliveryRequested: Sendable, Codable {
    package var deliveryId: UUID
    package var endpointId: UUID
    package init(deliveryId: UUID, endpointId: UUID) {
        self.deliveryId = deliveryId
        self.endpointId = endpointId
    }
}
