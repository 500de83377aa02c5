/// Where a payment is.
package enum PaymentStatus: String, Sendable, Codable, CaseIterable {
    /// Created; not charged (yet), or a `manual` payment waiting for its customer.
    case pending = "PENDING"
    /// Charged.
    case succeeded = "SUCCEEDED"
    /// Declined by the provider, or given up by Emporium (see ``PaymentStatus/ownFailureReasons``).
    case failed = "FAILED"
    /// Charged, then refunded.
    case refunded = "REFUNDED"

    /// Failure reasons Emporium records itself, as opposed to a provider's decline code: a
    /// payment failed for one of these was never refused by the provider, so the provider is
    /// asked before anyone concludes that it holds no charge.
    package static let ownFailureReasons = ["order_not_awaiting_payment", "order_cancelled"]
}

/// Where a refund is.
package enum RefundStatus: String, Sendable, Codable, CaseIterable {
    case pending = "PENDING"
    case succeeded = "SUCCEEDED"
    case failed = "FAILED"
}
