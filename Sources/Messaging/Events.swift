import Foundation

// Typed payloads of the saga's events (ARCHITECTURE.md, "Event flow").

/// A line of an order as the stock worker needs it.
public struct OrderLine: Sendable, Codable, Hashable {
    public var productId: UUID
    public var quantity: Int
    public init(productId: UUID, quantity: Int) {
        self.productId = productId
        self.quantity = quantity
    }
}

/// `order.placed`: a customer placed an order; stock is next.
public struct OrderPlaced: Sendable, Codable {
    public var orderId: UUID
    public var userId: UUID
    public var totalCents: Int
    public var currency: String
    public var paymentMethod: String
    public var lines: [OrderLine]
    public init(orderId: UUID, userId: UUID, totalCents: Int, currency: String, paymentMethod: String, lines: [OrderLine]) {
        self.orderId = orderId
        self.userId = userId
        self.totalCents = totalCents
        self.currency = currency
        self.paymentMethod = paymentMethod
        self.lines = lines
    }
}

/// `stock.reserved` / `stock.rejected`: the stock worker's answer to `order.placed`.
public struct StockOutcome: Sendable, Codable {
    public var orderId: UUID
    /// For a rejection, the first product that was short.
    public var productId: UUID?
    public init(orderId: UUID, productId: UUID? = nil) {
        self.orderId = orderId
        self.productId = productId
    }
}

/// `payment.requested`: the order worker asks for the charge.
public struct PaymentRequested: Sendable, Codable {
    public var orderId: UUID
    public var userId: UUID
    public var amountCents: Int
    public var currency: String
    public var paymentMethod: String
    public init(orderId: UUID, userId: UUID, amountCents: Int, currency: String, paymentMethod: String) {
        self.orderId = orderId
        self.userId = userId
        self.amountCents = amountCents
        self.currency = currency
        self.paymentMethod = paymentMethod
    }
}

/// `payment.succeeded` / `payment.failed`.
public struct PaymentOutcome: Sendable, Codable {
    public var orderId: UUID
    public var paymentId: UUID
    public var reason: String?
    public init(orderId: UUID, paymentId: UUID, reason: String? = nil) {
        self.orderId = orderId
        self.paymentId = paymentId
        self.reason = reason
    }
}

/// `order.confirmed` / `order.cancelled`.
public struct OrderOutcome: Sendable, Codable {
    public var orderId: UUID
    public var userId: UUID
    public var reason: String?
    public init(orderId: UUID, userId: UUID, reason: String? = nil) {
        self.orderId = orderId
        self.userId = userId
        self.reason = reason
    }
}

/// `payment.refunded`.
public struct PaymentRefunded: Sendable, Codable {
    public var orderId: UUID
    public var paymentId: UUID
    public var refundId: UUID
    public var amountCents: Int
    public var currency: String
    public init(orderId: UUID, paymentId: UUID, refundId: UUID, amountCents: Int, currency: String) {
        self.orderId = orderId
        self.paymentId = paymentId
        self.refundId = refundId
        self.amountCents = amountCents
        self.currency = currency
    }
}
