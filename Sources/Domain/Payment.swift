/// Where a payment is.
package enum PaymentStatus: String, Sendable, Codable, CaseIterable {
    /// Created; not charged (yet), or a `manual` payment waiting for its customer.
    case pending = "PENDING"
    /// Authorised by the provider and held for capture when the order ships (`PAYMENT_CAPTURE=manual`).
    case authorized = "AUTHORIZED"
    /// Charged (captured).
    case succeeded = "SUCCEEDED"
    /// Declined by the provider, or given up by Emporium (see ``PaymentStatus/ownFailureReasons``).
    case failed = "FAILED"
    /// An authorisation released without capture (cancelled before shipping, or expired).
    case voided = "VOIDED"
    /// Charged, then partly refunded (`refunded_cents` says how much).
    case partiallyRefunded = "PARTIALLY_REFUNDED"
    /// Charged, then refunded in full.
    case refunded = "REFUNDED"

    /// Whether money was captured (and may be refunded).
    package var isCaptured: Bool { self == .succeeded || self == .partiallyRefunded || self == .refunded }

    /// The status of a captured payment once `refundedCents` of `amountCents` are refunded.
    package static func afterRefund(refundedCents: Int, amountCents: Int) -> PaymentStatus {
        refundedCents >= amountCents ? .refunded : (refundedCents > 0 ? .partiallyRefunded : .succeeded)
    }

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
