import Domain
import Foundation
import Settings

/// How to reach Stripe. `description` never shows the keys.
package struct StripeSettings: Sendable, CustomStringConvertible {
    /// The Stripe API version Emporium is written against, sent on every request.
    package static let apiVersion = "2024-06-20"
    /// `STRIPE_API_BASE` (default `https://api.stripe.com`): localstripe's address in tests.
    package var apiBase = "https://api.stripe.com"
    /// `STRIPE_SECRET_KEY`: the API key; from configuration only, never logged.
    package var secretKey: String
    /// `STRIPE_WEBHOOK_SECRET`: the signing secret of the webhook endpoint registered with
    /// Stripe (`whsec_…`); the API refuses to start with Stripe configured and no secret.
    package var webhookSecret: String?
    /// `STRIPE_TIMEOUT_MS` (default 10000): the deadline of every call to Stripe.
    package var timeout: Duration = .seconds(10)
    /// `STRIPE_WEBHOOK_TOLERANCE_SECONDS` (default 300): how old a webhook's signed timestamp
    /// may be (either way) before it is refused as a replay.
    package var webhookTolerance: Duration = .seconds(300)
    /// `STRIPE_PUBLISHABLE_KEY` (`pk_…`): lets the storefront take cards with Stripe.js, so
    /// card numbers go from the customer's browser to Stripe and never through Emporium.
    /// Without it the storefront's checkout asks for a saved payment method id.
    package var publishableKey: String?
    /// `STRIPE_JS_URL` (default `https://js.stripe.com/v3/`): where the storefront loads
    /// Stripe.js from (localstripe's copy in tests). Its origin is allowed by the pay page's
    /// Content-Security-Policy, and only there.
    package var jsURL = "https://js.stripe.com/v3/"

    /// Creates settings with `secretKey`.
    package init(secretKey: String) { self.secretKey = secretKey }

    package var description: String { "Stripe at \(apiBase) (key and webhook secret redacted)" }
}

/// Which payment provider charges cards, and how.
package struct PaymentSettings: Sendable {
    /// `PAYMENT_PROVIDER`: `fake` (default; charges nothing) or `stripe`.
    package var provider = PaymentIds.fakeProviderName
    /// `PAYMENT_CAPTURE`: `automatic` (default) charges at order time; `manual` authorises then
    /// and captures when the order ships (Stripe only).
    package var capture = CaptureMode.automatic
    /// Set when `provider` is `stripe`.
    package var stripe: StripeSettings?

    /// Creates the defaults: the fake provider, automatic capture.
    package init() {}

    /// Reads the variables above; a malformed or incomplete combination is an error.
    package static func read(_ env: EnvironmentReader) throws -> PaymentSettings {
        var settings = PaymentSettings()
        if let capture = env.string("PAYMENT_CAPTURE") {
            guard let mode = CaptureMode(rawValue: capture) else { throw ConfigurationError("PAYMENT_CAPTURE must be automatic or manual") }
            settings.capture = mode
        }
        switch env.string("PAYMENT_PROVIDER") ?? PaymentIds.fakeProviderName {
        case PaymentIds.fakeProviderName:
            guard settings.capture == .automatic else { throw ConfigurationError("PAYMENT_CAPTURE=manual needs PAYMENT_PROVIDER=stripe") }
        case PaymentIds.stripeProviderName:
            settings.provider = PaymentIds.stripeProviderName
            guard let key = env.string("STRIPE_SECRET_KEY"), !key.isEmpty else {
                throw ConfigurationError("PAYMENT_PROVIDER=stripe needs STRIPE_SECRET_KEY")
            }
            var stripe = StripeSettings(secretKey: key)
            if let base = env.string("STRIPE_API_BASE") {
                guard let url = URL(string: base), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                    throw ConfigurationError("STRIPE_API_BASE must be an http(s) URL")
                }
                stripe.apiBase = base.hasSuffix("/") ? String(base.dropLast()) : base
            }
            stripe.webhookSecret = env.string("STRIPE_WEBHOOK_SECRET")
            if let timeout = try env.milliseconds("STRIPE_TIMEOUT_MS") { stripe.timeout = timeout }
            if let tolerance = try env.seconds("STRIPE_WEBHOOK_TOLERANCE_SECONDS") { stripe.webhookTolerance = tolerance }
            if let key = env.string("STRIPE_PUBLISHABLE_KEY"), !key.isEmpty {
                guard key.hasPrefix("pk_"), key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw ConfigurationError("STRIPE_PUBLISHABLE_KEY must be a publishable key (pk_…), never the secret key")
                }
                stripe.publishableKey = key
            }
            if let script = env.string("STRIPE_JS_URL") {
                guard let url = URL(string: script), url.scheme == "https" || url.scheme == "http", url.host != nil else {
                    throw ConfigurationError("STRIPE_JS_URL must be an http(s) URL")
                }
                stripe.jsURL = script
            }
            settings.stripe = stripe
        default:
            throw ConfigurationError("PAYMENT_PROVIDER must be fake or stripe")
        }
        return settings
    }
}
