/// Where an order is in its life.
public enum OrderStatus: String, Sendable, Codable, CaseIterable {
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

    /// The states an order may move to from this one.
    public var allowedNext: Set<OrderStatus> {
        switch self {
        case .pending: [.awaitingPayment, .cancelled]
        case .awaitingPayment: [.confirmed, .cancelled]
        case .confirmed: [.shipped, .cancelled]
        case .shipped: [.delivered]
        case .delivered, .cancelled: []
        }
    }

    /// The states from which `target` may be reached: the `allowed_from` list of the
    /// conditional `UPDATE ... WHERE status = ANY(...)` that moves an order.
    public static func allowedSources(of target: OrderStatus) -> [OrderStatus] {
        allCases.filter { $0.allowedNext.contains(target) }
    }

    /// Whether the saga is finished with the order (nothing more happens on its own).
    public var isTerminal: Bool { self == .confirmed || self == .cancelled || self == .shipped || self == .delivered }
}

/// Why an order was cancelled.
public enum CancellationReason: String, Sendable, Codable, CaseIterable {
    /// Some line could not be reserved.
    case outOfStock = "out_of_stock"
    /// The payment provider declined the charge.
    case paymentFailed = "payment_failed"
    /// The customer cancelled.
    case customer = "customer"
    /// Payment did not arrive in time.
    case expired = "expired"
}

/// Event types: each is also the AMQP routing key.
public enum EventType {
    public static let orderPlaced = "order.placed"
    public static let orderConfirmed = "order.confirmed"
    public static let orderCancelled = "order.cancelled"
    public static let stockReserved = "stock.reserved"
    public static let stockRejected = "stock.rejected"
    public static let orderShipped = "order.shipped"
    public static let orderDelivered = "order.delivered"
    public static let paymentRequested = "payment.requested"
    public static let paymentSucceeded = "payment.succeeded"
    public static let paymentFailed = "payment.failed"
    public static let paymentRefunded = "payment.refunded"
    /// A charge arrived for an order that was cancelled meanwhile: give the money back.
    public static let paymentRefundRequested = "payment.refund_requested"
}

/// User roles, from least to most privileged.
public enum Role: String, Sendable, Codable, CaseIterable {
    case customer = "CUSTOMER"
    case seller = "SELLER"
    case admin = "ADMIN"
    case superadmin = "SUPERADMIN"

    /// Whether this role may manage the whole catalog and every order.
    public var isAdmin: Bool { self == .admin || self == .superadmin }
}
