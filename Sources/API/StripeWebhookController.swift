import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Messaging
import Payments
import Postgres

/// `POST /api/v1/webhooks/stripe`: Stripe's events, verified and handed to the payment worker.
///
/// The signature (`Stripe-Signature`, HMAC-SHA256 over `t.payload` with
/// `STRIPE_WEBHOOK_SECRET`) is checked against the raw body with a tolerance on its timestamp;
/// anything else is refused with 400 and the reason logged. A verified event's id is recorded
/// in the inbox and the event goes to the outbox in the same transaction, and Stripe gets its
/// 2xx only after that commit: a delivery Stripe retries (or replays) is recorded once, and
/// one that was not acknowledged is never lost.
struct StripeWebhookController: Sendable {
    let pool: PostgresPool
    let outbox: OutboxPublisher
    let names: MessagingNames
    /// `STRIPE_WEBHOOK_SECRET`; nil when Stripe is not the provider (the route answers 404).
    let secret: String?
    let tolerance: Duration

    /// The inbox consumer name Stripe's event ids are recorded under.
    static let inboxConsumer = "stripe-webhook"
    /// The event types the payment worker acts on; others are acknowledged and dropped.
    static let handledTypes: Set<String> = [
        "payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled", "payment_intent.amount_capturable_updated",
        "payment_intent.processing", "charge.refunded", "charge.refund.updated", "charge.dispute.created",
    ]

    struct Receipt: ResponseEncodable {
        let received: Bool
        let duplicate: Bool
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("webhooks/stripe") { request, context in try await receive(request, context) }
    }

    private func receive(_ request: Request, _ context: AppRequestContext) async throws -> Receipt {
        guard let header = request.headers[.stripeSignature], !header.isEmpty else {
            context.logger.warning("stripe webhook refused", metadata: ["reason": "no Stripe-Signature header"])
            throw APIError.badRequest("webhook signature refused: \(WebhookSignature.Refusal.missingHeader)")
        }
        guard let secret else { throw APIError.notFound("the Stripe webhook endpoint (PAYMENT_PROVIDER is not stripe)") }
        let body = Array(try await request.body.collect(upTo: context.maxUploadSize).readableBytesView)
        do {
            try WebhookSignature.verify(header: header, body: body, secrets: [secret], tolerance: tolerance)
        } catch {
            context.logger.warning("stripe webhook refused", metadata: ["reason": "\(error)"])
            throw APIError.badRequest("webhook signature refused: \(error)")
        }
        guard let event = try? JSONDecoder().decode(StripeEvent.self, from: Data(body)) else {
            context.logger.warning("stripe webhook refused", metadata: ["reason": "not a Stripe event"])
            throw APIError.badRequest("the body is not a Stripe event")
        }
        guard Self.handledTypes.contains(event.type) else { return Receipt(received: true, duplicate: false) }
        let object = event.data.object
        let received = ProviderEventReceived(
            eventId: event.id, type: event.type, paymentIntent: object.object == "payment_intent" ? object.id : object.paymentIntent,
            orderId: object.metadata?["order_id"].flatMap(UUID.init(uuidString:)))
        let envelope = try await pool.withTransaction { db -> EventEnvelope? in
            guard try await InboxStore.claim(consumer: Self.inboxConsumer, messageID: PaymentIds.derived("stripe-event:\(event.id)"), on: db) else {
                return nil
            }
            let envelope = try EventEnvelope(type: .providerEventReceived, orderId: received.orderId, payload: received, traceparent: nil)
            try await OutboxStore.append(envelope, exchange: names.eventsExchange, on: db)
            return envelope
        }
        guard let envelope else { return Receipt(received: true, duplicate: true) }
        context.logger.info("stripe webhook recorded", metadata: ["event": "\(event.id)", "type": "\(event.type)"])
        outbox.publishSoon([envelope])
        return Receipt(received: true, duplicate: false)
    }
}

/// The fields of a Stripe event the webhook reads; the payment worker asks Stripe for the rest.
struct StripeEvent: Decodable {
    struct Payload: Decodable {
        let object: Object
    }
    struct Object: Decodable {
        let id: String
        /// `payment_intent`, `charge`, `dispute`, `refund`…
        let object: String
        let paymentIntent: String?
        let metadata: [String: String]?
        enum CodingKeys: String, CodingKey {
            case id, object, metadata
            case paymentIntent = "payment_intent"
        }
    }
    let id: String
    let type: String
    let data: Payload
}

extension HTTPField.Name {
    /// Stripe's webhook signature header.
    static let stripeSignature = Self("Stripe-Signature")!
}
