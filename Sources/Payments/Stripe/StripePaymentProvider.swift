import Domain
import Foundation
import Logging
import Messaging
import Store

/// Charges through Stripe PaymentIntents, confirmed server-side with the payment method the
/// order carries (`pm_…`), or by the customer's browser for client-confirmed payments.
///
/// Every object is created under an idempotency key derived from Emporium's ids and recorded
/// in `provider_objects` (``ProviderObjectStore``) before it is confirmed, so a worker that
/// dies after Stripe charged finds the same PaymentIntent again: Stripe's `Idempotency-Key`
/// protects the create call itself, the record protects everything after it (and keeps the
/// guarantee with an emulator that ignores the header). A refund is also looked for among the
/// PaymentIntent's refunds by the `refund_id` in its metadata before one is created.
package struct StripePaymentProvider: PaymentProvider {
    package var name: String { PaymentIds.stripeProviderName }
    package let captureMode: CaptureMode
    let client: StripeClient
    let objects: ProviderObjectStore

    /// Creates the provider; `objects` must write outside the caller's transaction.
    package init(client: StripeClient, captureMode: CaptureMode, objects: ProviderObjectStore) {
        self.client = client
        self.captureMode = captureMode
        self.objects = objects
    }

    package func charge(_ request: ChargeRequest) async throws -> ProviderResult {
        var intent: StripePaymentIntent
        do {
            intent = try await findOrCreateIntent(request, withMethod: true)
            if intent.status == "requires_confirmation" {
                intent = try await client.post(
                    "/v1/payment_intents/\(intent.id)/confirm", [], idempotencyKey: "confirm:\(request.idempotencyKey)", as: StripePaymentIntent.self)
            }
        } catch let refusal as StripeRequestError {
            return .declined(code: refusal.bestCode)
        }
        switch intent.lookup {
        case .succeeded(let reference): return .succeeded(reference: reference)
        case .authorized(let reference): return .authorized(reference: reference)
        case .declined(let code): return .declined(code: code)
        case .notFound: return .declined(code: "payment_intent_missing")
        case .undecided:
            guard intent.status == "requires_action" else {
                // `processing`: Stripe decides shortly; the retry asks again with the same key.
                throw TransientFailure("Stripe is still processing \(intent.id)")
            }
            // A saved card whose bank wants the customer present (3-D Secure) cannot be
            // charged server-side: the attempt is released and the order is declined.
            try? await releaseAuthorization(reference: intent.id, idempotencyKey: "release:\(request.idempotencyKey)")
            return .declined(code: "authentication_required")
        }
    }

    package func lookupCharge(idempotencyKey: String) async throws -> ChargeLookup {
        guard let id = try await objects.object(key: idempotencyKey) else { return .notFound }
        return try await chargeState(reference: id)
    }

    package func chargeState(reference: String) async throws -> ChargeLookup {
        do {
            return try await client.get("/v1/payment_intents/\(reference)", as: StripePaymentIntent.self).lookup
        } catch let refusal as StripeRequestError where refusal.status == 404 {
            return .notFound
        }
    }

    package func capture(reference: String, idempotencyKey: String) async throws -> ProviderResult {
        let intent = try await client.get("/v1/payment_intents/\(reference)", as: StripePaymentIntent.self)
        switch intent.status {
        case "succeeded": return .succeeded(reference: reference)
        case "requires_capture":
            do {
                let captured = try await client.post(
                    "/v1/payment_intents/\(reference)/capture", [], idempotencyKey: idempotencyKey, as: StripePaymentIntent.self)
                return captured.status == "succeeded" ? .succeeded(reference: reference) : .declined(code: "capture_\(captured.status)")
            } catch let refusal as StripeRequestError {
                return .declined(code: refusal.code == "payment_intent_unexpected_state" ? "authorization_expired" : refusal.bestCode)
            }
        default:
            // `canceled`: Stripe released the authorisation (it expires after about 7 days).
            return .declined(code: "authorization_expired")
        }
    }

    package func releaseAuthorization(reference: String, idempotencyKey: String) async throws {
        let intent = try await client.get("/v1/payment_intents/\(reference)", as: StripePaymentIntent.self)
        guard ["requires_capture", "requires_payment_method", "requires_confirmation", "requires_action"].contains(intent.status) else { return }
        do {
            _ = try await client.post("/v1/payment_intents/\(reference)/cancel", [], idempotencyKey: idempotencyKey, as: StripePaymentIntent.self)
        } catch let refusal as StripeRequestError where refusal.status == 400 {
            // Cancelled meanwhile (or captured: the caller reads the state again).
        }
    }

    package func openClientIntent(_ request: ChargeRequest) async throws -> ClientIntent {
        let intent = try await findOrCreateIntent(request, withMethod: false)
        return ClientIntent(reference: intent.id, clientSecret: intent.clientSecret)
    }

    /// A SetupIntent for the storefront's card form: Stripe.js confirms it with the card the
    /// customer typed into Stripe's own field and hands the page a `pm_…` id. `on_session`:
    /// the card is for the payment the customer is making now.
    package func openCardCollection(idempotencyKey: String) async throws -> String {
        let setup = try await client.post("/v1/setup_intents", [("usage", "on_session")], idempotencyKey: "setup:\(idempotencyKey)", as: StripeSetupIntent.self)
        guard let secret = setup.clientSecret else { throw TransientFailure("Stripe answered SetupIntent \(setup.id) without a client secret") }
        return secret
    }

    /// Attaches the collected `pm_…` to the PaymentIntent and confirms it (Stripe's "finalize
    /// payments on the server"). A card Stripe refuses is answered with its decline code; one
    /// whose bank wants the customer is `requires_action`, completed by Stripe.js in the page.
    package func confirmClientIntent(reference: String, paymentMethod: String, idempotencyKey: String) async throws -> ClientConfirmation {
        do {
            _ = try await client.post(
                "/v1/payment_intents/\(reference)", [("payment_method", paymentMethod)], idempotencyKey: "attach:\(idempotencyKey)",
                as: StripePaymentIntent.self)
            let intent = try await client.post(
                "/v1/payment_intents/\(reference)/confirm", [], idempotencyKey: "confirm:\(idempotencyKey)", as: StripePaymentIntent.self)
            return ClientConfirmation(
                status: intent.status, clientSecret: intent.status == "requires_action" ? intent.clientSecret : nil,
                declineCode: intent.lastPaymentError.map { $0.declineCode ?? $0.code ?? "card_declined" })
        } catch let refusal as StripeRequestError where refusal.status == 402 {
            return ClientConfirmation(status: "requires_payment_method", clientSecret: nil, declineCode: refusal.bestCode)
        } catch let refusal as StripeRequestError {
            // Not confirmable (already paid by an earlier click, or cancelled): say where it is.
            // Or a payment method Stripe does not know: refused like a declined card.
            let intent = try await client.get("/v1/payment_intents/\(reference)", as: StripePaymentIntent.self)
            return ClientConfirmation(
                status: intent.status, clientSecret: nil, declineCode: intent.status == "requires_payment_method" ? refusal.bestCode : nil)
        }
    }

    package func refund(_ request: RefundRequest) async throws -> ProviderResult {
        let refund: StripeRefund
        do {
            refund = try await findOrCreateRefund(request)
        } catch let refusal as StripeRequestError {
            return .declined(code: refusal.bestCode)
        }
        switch refund.status {
        case "succeeded", "pending": return .succeeded(reference: refund.id)
        default: return .declined(code: "refund_\(refund.status)")
        }
    }

    package func refunds(reference: String) async throws -> [ProviderRefund] {
        try await client.get("/v1/refunds", query: [("payment_intent", reference), ("limit", "100")], as: StripeList<StripeRefund>.self).data
            .filter { $0.status == "succeeded" || $0.status == "pending" }
            .map { ProviderRefund(reference: $0.id, amountCents: $0.amount, refundId: $0.refundId) }
    }

    package func recentCharges(since: Date, limit: Int) async throws -> [ProviderCharge] {
        var charges: [ProviderCharge] = []
        var cursor: String?
        // Stripe lists newest first: a page that ends before `since` is the last one needed.
        for _ in 0..<Self.maxPages {
            var query = [("limit", "100")]
            if let cursor { query.append(("starting_after", cursor)) }
            let page = try await client.get("/v1/payment_intents", query: query, as: StripeList<StripePaymentIntent>.self)
            for intent in page.data {
                let created = Date(timeIntervalSince1970: TimeInterval(intent.created))
                guard created >= since, let paymentId = intent.paymentId, let orderId = intent.orderId else { continue }
                let refunds = intent.status == "succeeded" ? try await refunds(reference: intent.id) : []
                charges.append(
                    ProviderCharge(
                        reference: intent.id, paymentId: paymentId, orderId: orderId, state: intent.lookup, amountCents: intent.amount, refunds: refunds,
                        created: created))
                if charges.count >= limit { return charges }
            }
            guard page.hasMore, let last = page.data.last else { break }
            if Date(timeIntervalSince1970: TimeInterval(last.created)) < since, (page.data.first?.created ?? 0) >= last.created { break }
            cursor = last.id
        }
        return charges
    }

    /// Pages of 100 the reconciler reads at most per sweep.
    static let maxPages = 50

    /// The PaymentIntent of `request`: the one recorded under its key, or a new one (not yet
    /// confirmed), recorded before anything can charge it.
    private func findOrCreateIntent(_ request: ChargeRequest, withMethod: Bool) async throws -> StripePaymentIntent {
        if let id = try await objects.object(key: request.idempotencyKey) {
            return try await client.get("/v1/payment_intents/\(id)", as: StripePaymentIntent.self)
        }
        var form: [(String, String)] = [
            ("amount", String(request.amountCents)), ("currency", request.currency.lowercased()),
            ("capture_method", captureMode.rawValue),
            ("metadata[order_id]", request.orderId.uuidString.lowercased()), ("metadata[payment_id]", request.idempotencyKey),
        ]
        if withMethod { form.append(("payment_method", request.paymentMethod)) }
        let created = try await client.post("/v1/payment_intents", form, idempotencyKey: request.idempotencyKey, as: StripePaymentIntent.self)
        let recorded = try await objects.record(key: request.idempotencyKey, provider: name, kind: "payment_intent", objectId: created.id)
        // Another process recorded an intent for this key first: that one is the payment.
        return recorded == created.id ? created : try await client.get("/v1/payment_intents/\(recorded)", as: StripePaymentIntent.self)
    }

    /// The refund of `request`: the one recorded under its key, one found on the
    /// PaymentIntent by its `refund_id`, or a new one.
    private func findOrCreateRefund(_ request: RefundRequest) async throws -> StripeRefund {
        if let id = try await objects.object(key: request.idempotencyKey) {
            return try await client.get("/v1/refunds/\(id)", as: StripeRefund.self)
        }
        let existing = try await client.get(
            "/v1/refunds", query: [("payment_intent", request.chargeReference), ("limit", "100")], as: StripeList<StripeRefund>.self)
        if let found = existing.data.first(where: { $0.refundId?.uuidString.lowercased() == request.idempotencyKey.lowercased() }) {
            _ = try await objects.record(key: request.idempotencyKey, provider: name, kind: "refund", objectId: found.id)
            return found
        }
        let created = try await client.post(
            "/v1/refunds",
            [
                ("payment_intent", request.chargeReference), ("amount", String(request.amountCents)),
                ("metadata[refund_id]", request.idempotencyKey), ("metadata[order_id]", request.orderId.uuidString.lowercased()),
            ], idempotencyKey: request.idempotencyKey, as: StripeRefund.self)
        _ = try await objects.record(key: request.idempotencyKey, provider: name, kind: "refund", objectId: created.id)
        return created
    }
}
