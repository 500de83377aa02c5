import AsyncHTTPClient
import Domain
import Foundation
import NIOCore
import NIOHTTP1
import Payments
import TestSupport
import Testing

/// localstripe, the Stripe emulator `make test` starts on loopback (`LOCALSTRIPE_URL`): what
/// a test needs to point a stack at it, to act as the customer's browser, and to read what
/// Stripe holds.
struct Localstripe: Sendable {
    let base: String
    /// Any `sk_test_…` key is accepted by localstripe; each test uses its own.
    let secretKey: String
    /// The signing secret of this test's webhook endpoint.
    let webhookSecret: String

    init() {
        base = ProcessInfo.processInfo.environment["LOCALSTRIPE_URL"] ?? "http://127.0.0.1:8420"
        secretKey = "sk_test_\(UUID().uuidString.prefix(12))"
        webhookSecret = "whsec_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
    }

    /// Stack options that charge through localstripe with `capture`.
    func options(capture: CaptureMode = .automatic, base options: Stack.Options = Stack.Options()) -> Stack.Options {
        var options = options
        var stripe = StripeSettings(secretKey: secretKey)
        stripe.apiBase = base
        stripe.webhookSecret = webhookSecret
        stripe.timeout = .seconds(5)
        options.payments.provider = PaymentIds.stripeProviderName
        options.payments.capture = capture
        options.payments.stripe = stripe
        return options
    }

    /// The variables that point an Emporium process (a worker, the CLI) at localstripe.
    func environment(capture: CaptureMode = .automatic) -> [String: String] {
        [
            "PAYMENT_PROVIDER": "stripe", "PAYMENT_CAPTURE": capture.rawValue, "STRIPE_API_BASE": base, "STRIPE_SECRET_KEY": secretKey,
            "STRIPE_WEBHOOK_SECRET": webhookSecret, "STRIPE_TIMEOUT_MS": "5000",
        ]
    }

    /// The PaymentIntents localstripe holds for an order (by the metadata Emporium sets).
    func paymentIntents(ofOrder orderId: UUID) async throws -> [[String: Any]] {
        var found: [[String: Any]] = []
        var cursor: String?
        repeat {
            let page = try await call(.GET, "/v1/payment_intents?limit=100" + (cursor.map { "&starting_after=\($0)" } ?? ""))
            let items = (page["data"] as? [[String: Any]]) ?? []
            found += items.filter { ($0["metadata"] as? [String: String])?["order_id"] == orderId.uuidString.lowercased() }
            cursor = (page["has_more"] as? Bool) == true ? items.last?["id"] as? String : nil
        } while cursor != nil
        return found
    }

    /// Registers the stack's webhook endpoint with localstripe, which then signs every event
    /// with this test's secret and sends it there.
    func registerWebhook(port: Int) async throws {
        _ = try await call(
            .POST, "/_config/webhooks/\(UUID().uuidString)",
            form: [("url", "http://127.0.0.1:\(port)/api/v1/webhooks/stripe"), ("secret", webhookSecret)])
    }

    /// A PaymentIntent as a JSON object.
    func paymentIntent(_ id: String) async throws -> [String: Any] { try await call(.GET, "/v1/payment_intents/\(id)") }

    /// The refunds of a PaymentIntent.
    func refunds(of paymentIntent: String) async throws -> [[String: Any]] {
        (try await call(.GET, "/v1/refunds?payment_intent=\(paymentIntent)&limit=100")["data"] as? [[String: Any]]) ?? []
    }

    /// Events of `type` concerning `objectId`, as localstripe recorded them.
    func events(type: String, objectId: String) async throws -> [[String: Any]] {
        let all = (try await call(.GET, "/v1/events?type=\(type)&limit=100")["data"] as? [[String: Any]]) ?? []
        return all.filter { (($0["data"] as? [String: Any])?["object"] as? [String: Any])?["id"] as? String == objectId }
    }

    /// Creates a card PaymentMethod from a test card number (as Stripe.js does in the browser).
    func cardPaymentMethod(_ number: String) async throws -> String {
        let created = try await call(
            .POST, "/v1/payment_methods",
            form: [("type", "card"), ("card[number]", number), ("card[exp_month]", "12"), ("card[exp_year]", "2030"), ("card[cvc]", "123")])
        return try #require(created["id"] as? String)
    }

    /// What the customer's browser does with a client secret: attach the card, confirm, and
    /// pass 3-D Secure when the bank asks for it.
    func confirmInBrowser(paymentIntent: String, clientSecret: String, paymentMethod: String, authenticate: Bool = true) async throws -> String {
        _ = try await call(.POST, "/v1/payment_intents/\(paymentIntent)", form: [("payment_method", paymentMethod)])
        var intent = try await call(.POST, "/v1/payment_intents/\(paymentIntent)/confirm", form: [], allowFailure: true)
        if intent["status"] as? String == "requires_action" {
            intent = try await call(
                .POST, "/v1/payment_intents/\(paymentIntent)/_authenticate",
                form: [("client_secret", clientSecret), ("success", authenticate ? "true" : "false"), ("key", "pk_test_browser")], authorized: false)
        }
        return intent["status"] as? String ?? "unknown"
    }

    @discardableResult
    func call(_ method: HTTPMethod, _ path: String, form: [(String, String)]? = nil, authorized: Bool = true, allowFailure: Bool = false) async throws
        -> [String: Any]
    {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if authorized { request.headers.add(name: "Authorization", value: "Bearer \(secretKey)") }
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 8 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
        guard allowFailure || (200..<300).contains(Int(response.status.code)) else {
            throw TestFailure("localstripe \(method.rawValue) \(path) answered \(response.status.code): \(String(buffer: body))")
        }
        return json
    }
}
