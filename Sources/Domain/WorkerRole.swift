/// The worker roles; each consumes one durable queue.
package enum WorkerRole: String, Sendable, CaseIterable {
    case stock, payment, order, notification

    /// The routing table of the saga: the event types each role's queue receives, from the
    /// role's input enum. The topology binds exactly these, the worker refuses anything else,
    /// and each handler's switch over its input enum handles every one of them.
    package var consumes: [EventType] {
        switch self {
        case .stock: StockEvent.allCases.map(\.type)
        case .order: OrderEvent.allCases.map(\.type)
        case .payment: PaymentEvent.allCases.map(\.type)
        case .notification: NotificationEvent.allCases.map(\.type)
        }
    }
}

/// What a role's handler receives: one of the events its queue is bound to.
package protocol RoleInput: Sendable, CaseIterable {
    /// The event type this input is.
    var type: EventType { get }
}

extension RoleInput {
    /// The input for `type`, or nil when this role does not handle it.
    package init?(_ type: EventType) {
        guard let input = Self.allCases.first(where: { $0.type == type }) else { return nil }
        self = input
    }
}

/// The stock worker's events: reserve, commit, release.
package enum StockEvent: RoleInput {
    case orderPlaced, orderConfirmed, orderCancelled, paymentRefunded

    package var type: EventType {
        switch self {
        case .orderPlaced: .orderPlaced
        case .orderConfirmed: .orderConfirmed
        case .orderCancelled: .orderCancelled
        case .paymentRefunded: .paymentRefunded
        }
    }
}

/// The order worker's events: the saga's outcomes it moves orders on.
package enum OrderEvent: RoleInput {
    case stockReserved, stockRejected, paymentSucceeded, paymentFailed, paymentRefunded

    package var type: EventType {
        switch self {
        case .stockReserved: .stockReserved
        case .stockRejected: .stockRejected
        case .paymentSucceeded: .paymentSucceeded
        case .paymentFailed: .paymentFailed
        case .paymentRefunded: .paymentRefunded
        }
    }
}

/// The payment worker's events: charges, captures, refunds and the provider's webhooks.
package enum PaymentEvent: RoleInput {
    case paymentRequested, orderCancelled, paymentRefundRequested, orderShipped, refundRequested, providerEventReceived

    package var type: EventType {
        switch self {
        case .paymentRequested: .paymentRequested
        case .orderCancelled: .orderCancelled
        case .paymentRefundRequested: .paymentRefundRequested
        case .orderShipped: .orderShipped
        case .refundRequested: .refundRequested
        case .providerEventReceived: .providerEventReceived
        }
    }
}

/// The notification worker's events: what a customer is told about, and what merchant
/// webhooks carry (``MerchantWebhooks/eventTypes``), and replayed webhook deliveries.
package enum NotificationEvent: RoleInput {
    case orderConfirmed, orderCancelled, paymentRefunded, orderShipped, orderDelivered
    case orderPlaced, paymentSucceeded, paymentFailed, refundRequested, webhookDelivery

    package var type: EventType {
        switch self {
        case .orderConfirmed: .orderConfirmed
        case .orderCancelled: .orderCancelled
        case .paymentRefunded: .paymentRefunded
        case .orderShipped: .orderShipped
        case .orderDelivered: .orderDelivered
        case .orderPlaced: .orderPlaced
        case .paymentSucceeded: .paymentSucceeded
        case .paymentFailed: .paymentFailed
        case .refundRequested: .refundRequested
        case .webhookDelivery: .webhookDelivery
        }
    }
}
