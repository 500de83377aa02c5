import Foundation

/// The fields of a Stripe PaymentIntent that Emporium reads.
struct StripePaymentIntent: Decodable, Sendable {
    let id: String
    /// `requires_payment_method`, `requires_confirmation`, `requires_action`, `processing`,
    /// `requires_capture`, `canceled` or `succeeded`.
    let status: String
    let amount: Int
    let currency: String
    let created: Int
    let metadata: [String: String]?
    let clientSecret: String?
    let lastPaymentError: StripeErrorBody.Detail?
    let cancellationReason: String?

    enum CodingKeys: String, CodingKey {
        case id, status, amount, currency, created, metadata
        case clientSecret = "client_secret"
        case lastPaymentError = "last_payment_error"
        case cancellationReason = "cancellation_reason"
    }

    /// Emporium's payment id, from the metadata Emporium created it with.
    var paymentId: UUID? { metadata?["payment_id"].flatMap(UUID.init(uuidString:)) }
    /// Emporium's order id, from the metadata.
    var orderId: UUID? { metadata?["order_id"].flatMap(UUID.init(uuidString:)) }

    /// What the intent means for the charge.
    var lookup: ChargeLookup {
        switch status {
        case "succeeded": .succeeded(reference: id)
        case "requires_capture": .authorized(reference: id)
        case "canceled": .declined(code: cancellationReason.map { "canceled_\($0)" } ?? "canceled")
        case "requires_payment_method":
            // Back to needing a card: the attempt failed (or none was made yet).
            lastPaymentError.map { .declined(code: $0.declineCode ?? $0.code ?? "card_declined") } ?? .undecided(reference: id)
        default: .undecided(reference: id)
        }
    }
}

/// The fields of a Stripe SetupIntent that Emporium reads: the storefront's card form.
struct StripeSetupIntent: Decodable, Sendable {
    let id: String
    let clientSecret: String?

    enum CodingKeys: String, CodingKey {
        case id
        case clientSecret = "client_secret"
    }
}

/// The fields of a Stripe Refund that Emporium reads.
struct StripeRefund: Decodable, Sendable {
    let id: String
    let amount: Int
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    let status: String
    let metadata: [String: String]?

    /// Emporium's refund id, when Emporium made it.
    var refundId: UUID? { metadata?["refund_id"].flatMap(UUID.init(uuidString:)) }
}

/// A page of a Stripe list.
struct StripeList<Item: Decodable & Sendable>: Decodable, Sendable {
    let data: [Item]
    let hasMore: Bool

    enum CodingKeys: String, CodingKey {
        case data
        case hasMore = "has_more"
    }
}
