import Foundation
import Logging
import Messaging
import Postgres

/// A charge to make. `idempotencyKey` is the payment id: the same key never charges twice.
package struct ChargeRequest: Sendable {
    package var idempotencyKey: String
    package var orderId: UUID
    package var amountCents: Int
    package var currency: String
    /// The card token, e.g. `tok_visa`.
    package var paymentMethod: String
}

/// What the provider said about a charge or refund.
package enum ProviderResult: Sendable, Equatable {
    /// Done; the provider's reference for it.
    case succeeded(reference: String)
    /// Refused for good (e.g. `card_declined`).
    case declined(code: String)
}

/// What the provider knows about a charge made (or not) under an idempotency key.
package enum ChargeLookup: Sendable, Equatable {
    /// The provider charged; its reference for the charge.
    case succeeded(reference: String)
    /// The provider was asked and declined.
    case declined(code: String)
    /// The provider never saw a charge with this key.
    case notFound
}

/// A payment processor. Implementations throw ``TransientFailure`` when the provider is
/// unreachable, so the message is retried with the same idempotency key.
package protocol PaymentProvider: Sendable {
    /// Stored on payment rows, e.g. `fake` or `stripe`.
    var name: String { get }
    /// Charges once per idempotency key; a repeated key returns the first result.
    func charge(_ request: ChargeRequest) async throws -> ProviderResult
    /// Refunds a charge once per idempotency key.
    func refund(idempotencyKey: String, orderId: UUID, chargeReference: String, amountCents: Int, currency: String) async throws -> ProviderResult
    /// Asks whether a charge was made under `idempotencyKey`, without making one. The payment
    /// worker asks before it concludes that an order that no longer awaits payment needs no
    /// refund: a worker may have charged and died before recording it.
    func lookupCharge(idempotencyKey: String) async throws -> ChargeLookup
}
