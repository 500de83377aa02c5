import Foundation

/// A charge to make. `idempotencyKey` is the payment id: the same key never charges twice.
package struct ChargeRequest: Sendable {
    package var idempotencyKey: String
    package var orderId: UUID
    package var amountCents: Int
    package var currency: String
    /// The saved payment method: a card token such as `tok_visa` (fake) or a Stripe
    /// PaymentMethod id such as `pm_…`.
    package var paymentMethod: String

    /// Creates the request.
    package init(idempotencyKey: String, orderId: UUID, amountCents: Int, currency: String, paymentMethod: String) {
        self.idempotencyKey = idempotencyKey
        self.orderId = orderId
        self.amountCents = amountCents
        self.currency = currency
        self.paymentMethod = paymentMethod
    }
}

/// A refund to make: `idempotencyKey` is the refund id.
package struct RefundRequest: Sendable {
    package var idempotencyKey: String
    package var orderId: UUID
    /// The provider's reference of the charge (a PaymentIntent id with Stripe).
    package var chargeReference: String
    package var amountCents: Int
    package var currency: String

    /// Creates the request.
    package init(idempotencyKey: String, orderId: UUID, chargeReference: String, amountCents: Int, currency: String) {
        self.idempotencyKey = idempotencyKey
        self.orderId = orderId
        self.chargeReference = chargeReference
        self.amountCents = amountCents
        self.currency = currency
    }
}

/// What the provider said about a charge or refund.
package enum ProviderResult: Sendable, Equatable {
    /// Done (a charge captured, a refund made); the provider's reference for it.
    case succeeded(reference: String)
    /// Authorised and not captured yet (`PAYMENT_CAPTURE=manual`); captured when the order ships.
    case authorized(reference: String)
    /// Refused for good (e.g. `card_declined`).
    case declined(code: String)
}

/// What the provider knows about a charge made (or not) under an idempotency key.
package enum ChargeLookup: Sendable, Equatable {
    /// The provider charged; its reference for the charge.
    case succeeded(reference: String)
    /// The provider authorised the amount and holds it for capture.
    case authorized(reference: String)
    /// The provider was asked and declined, or the attempt was cancelled.
    case declined(code: String)
    /// The charge exists and is not decided yet (the customer's bank is authenticating it,
    /// or it is processing): ask again later.
    case undecided(reference: String)
    /// The provider never saw a charge with this key.
    case notFound
}

/// Whether a card is charged at once or authorised now and captured when the order ships.
package enum CaptureMode: String, Sendable, CaseIterable {
    case automatic, manual
}

/// What a provider holds for one of Emporium's payments, found by listing its recent charges:
/// the reconciler compares it with Emporium's records.
package struct ProviderCharge: Sendable, Equatable {
    /// The provider's reference (a PaymentIntent id).
    package var reference: String
    /// Emporium's payment id, from the charge's metadata.
    package var paymentId: UUID
    package var orderId: UUID
    /// What the charge is now.
    package var state: ChargeLookup
    package var amountCents: Int
    /// Refunds the provider made on it: reference and amount.
    package var refunds: [ProviderRefund]
    /// When the provider created it.
    package var created: Date

    /// Creates the record.
    package init(reference: String, paymentId: UUID, orderId: UUID, state: ChargeLookup, amountCents: Int, refunds: [ProviderRefund], created: Date) {
        self.reference = reference
        self.paymentId = paymentId
        self.orderId = orderId
        self.state = state
        self.amountCents = amountCents
        self.refunds = refunds
        self.created = created
    }
}

/// A refund as the provider has it.
package struct ProviderRefund: Sendable, Equatable {
    package var reference: String
    package var amountCents: Int
    /// Emporium's refund id, when Emporium made the refund (from its metadata).
    package var refundId: UUID?

    /// Creates the record.
    package init(reference: String, amountCents: Int, refundId: UUID?) {
        self.reference = reference
        self.amountCents = amountCents
        self.refundId = refundId
    }
}

/// A payment the customer confirms themselves (in the browser, with the provider's script):
/// what the client needs to do so.
package struct ClientIntent: Sendable, Equatable {
    /// The provider's reference of the intent (a PaymentIntent id).
    package var reference: String
    /// The secret the client confirms with; nil when the provider has no client step.
    package var clientSecret: String?

    /// Creates the record.
    package init(reference: String, clientSecret: String?) {
        self.reference = reference
        self.clientSecret = clientSecret
    }
}

/// A client intent after the server confirmed it with the payment method the customer's
/// browser collected: where it stands, and what the browser must do next.
package struct ClientConfirmation: Sendable, Equatable {
    /// The intent's status at the provider: `succeeded`, `requires_capture`, `processing`,
    /// `requires_action` (the bank wants the customer: 3-D Secure) or, after a decline,
    /// `requires_payment_method`.
    package var status: String
    /// The secret Stripe.js completes a `requires_action` with.
    package var clientSecret: String?
    /// The provider's decline code when it refused the card.
    package var declineCode: String?

    /// Creates the record.
    package init(status: String, clientSecret: String?, declineCode: String?) {
        self.status = status
        self.clientSecret = clientSecret
        self.declineCode = declineCode
    }
}

/// A provider without a browser card form was asked for one of its steps.
package struct ClientConfirmationUnsupported: Error, CustomStringConvertible {
    package let provider: String
    package var description: String { "the \(provider) payment provider has no card form for the browser" }
}

/// A payment processor. Implementations throw `TransientFailure` when the provider is
/// unreachable or overloaded, so the message is retried with the same idempotency key; a
/// card the provider refuses is a ``ProviderResult/declined(code:)``, not an error.
package protocol PaymentProvider: Sendable {
    /// Stored on payment rows, e.g. `fake` or `stripe`.
    var name: String { get }
    /// Whether charges are captured at once or when the order ships.
    var captureMode: CaptureMode { get }
    /// Charges (or authorises, in manual capture mode) once per idempotency key; a repeated
    /// key returns the first result.
    func charge(_ request: ChargeRequest) async throws -> ProviderResult
    /// Refunds `amountCents` of a charge once per idempotency key.
    func refund(_ request: RefundRequest) async throws -> ProviderResult
    /// Asks whether a charge was made under `idempotencyKey`, without making one. The payment
    /// worker asks before it concludes that an order that no longer awaits payment needs no
    /// refund: a worker may have charged and died before recording it.
    func lookupCharge(idempotencyKey: String) async throws -> ChargeLookup
    /// Where the charge with the provider's `reference` is now: how a webhook's claim is
    /// checked (the webhook says which object changed; the provider says what it is).
    func chargeState(reference: String) async throws -> ChargeLookup
    /// Captures an authorised charge; `.declined("authorization_expired")` when the
    /// authorisation lapsed or was released.
    func capture(reference: String, idempotencyKey: String) async throws -> ProviderResult
    /// Releases an authorisation that will not be captured (the order was cancelled before it
    /// shipped). Releasing twice is harmless.
    func releaseAuthorization(reference: String, idempotencyKey: String) async throws
    /// Opens a payment the customer confirms themselves, once per idempotency key.
    func openClientIntent(_ request: ChargeRequest) async throws -> ClientIntent
    /// The refunds the provider made on the charge with `reference`.
    func refunds(reference: String) async throws -> [ProviderRefund]
    /// The provider's charges for Emporium payments created since `since`, at most `limit`.
    func recentCharges(since: Date, limit: Int) async throws -> [ProviderCharge]
    /// A secret with which the customer's browser collects a card through the provider's own
    /// form (Stripe: a SetupIntent that Stripe.js confirms with the card), so the card number
    /// never reaches Emporium; the browser gets back a payment method id. Once per key.
    func openCardCollection(idempotencyKey: String) async throws -> String
    /// Attaches the payment method the customer's browser collected to the client intent
    /// `reference` and confirms it, once per key. The order still advances only when the
    /// provider's webhook says the payment succeeded.
    func confirmClientIntent(reference: String, paymentMethod: String, idempotencyKey: String) async throws -> ClientConfirmation
}

extension PaymentProvider {
    /// Providers without a browser card form (the fake: its test cards are tokens) refuse.
    package func openCardCollection(idempotencyKey: String) async throws -> String {
        throw ClientConfirmationUnsupported(provider: name)
    }

    /// Providers without a browser card form refuse.
    package func confirmClientIntent(reference: String, paymentMethod: String, idempotencyKey: String) async throws -> ClientConfirmation {
        throw ClientConfirmationUnsupported(provider: name)
    }
}
