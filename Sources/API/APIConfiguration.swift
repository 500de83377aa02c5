import AMQP
import Domain
import Foundation
import Logging
import Messaging
import Payments
import Postgres
import Settings

/// Everything the API reads from its environment.
package struct APIConfiguration: Sendable {
    /// Address to listen on (`HTTP_HOST`, default `127.0.0.1`; containers set `0.0.0.0`).
    package var host: String = "127.0.0.1"
    /// Port to listen on (`HTTP_PORT`, default 8080).
    package var port: Int = 8080
    /// What every process shares: log level, PostgreSQL and its pool, RabbitMQ, the
    /// namespace and the retry policy (``ProcessSettings``). The API's pool is 10 sessions, a
    /// request waits at most 2 s for one (`DB_ACQUIRE_TIMEOUT_MS`), for a statement
    /// (`DB_QUERY_TIMEOUT_MS`) and for a new session (`DB_CONNECT_TIMEOUT_MS`): a 503 the
    /// client can retry beats a hang.
    package var shared: ProcessSettings
    /// The executable's name: also its service name in traces, its server's name and what its
    /// PostgreSQL sessions report as `application_name` (the after-commit marks' session
    /// `emporium-api marks`).
    package static let executableName = "emporium-api"
    /// The API's defaults for the shared settings.
    static let sharedDefaults = ProcessSettings.Defaults(poolSize: 10, acquireTimeout: .seconds(2), queryTimeout: .seconds(2), connectTimeout: .seconds(2))

    package var logLevel: Logger.Level {
        get { shared.logLevel }
        set { shared.logLevel = newValue }
    }
    package var postgres: PostgresConfiguration {
        get { shared.postgres }
        set { shared.postgres = newValue }
    }
    package var poolSize: Int {
        get { shared.poolSize }
        set { shared.poolSize = newValue }
    }
    package var acquireTimeout: Duration {
        get { shared.acquireTimeout }
        set { shared.acquireTimeout = newValue }
    }
    package var amqp: AMQPConfiguration {
        get { shared.amqp }
        set { shared.amqp = newValue }
    }
    package var names: MessagingNames {
        get { shared.names }
        set { shared.names = newValue }
    }
    package var policy: QueuePolicy {
        get { shared.policy }
        set { shared.policy = newValue }
    }
    /// HMAC key for access tokens (`JWT_SECRET`, required, at least 32 characters).
    package var jwtSecret = ""
    /// bcrypt cost for new password hashes (`BCRYPT_COST`, 4–16, default 11).
    package var bcryptCost: UInt8 = 11
    /// Requests per second per client address (`RATE_LIMIT_PER_SECOND`, default 50).
    package var rateLimitPerSecond: Double = 50
    /// Burst per client address (`RATE_LIMIT_BURST`, default 100).
    package var rateLimitBurst = 100
    /// Failed logins allowed per account (`LOGIN_MAX_FAILURES_PER_ACCOUNT`, default 5) and per
    /// client address (`LOGIN_MAX_FAILURES_PER_ADDRESS`, default 20) within
    /// `LOGIN_THROTTLE_WINDOW_SECONDS` (default 900).
    package var loginMaxFailuresPerAccount = 5
    package var loginMaxFailuresPerAddress = 20
    package var loginThrottleWindow: Duration = .seconds(900)
    /// Failures of one account from all addresses after which each attempt is delayed
    /// (`LOGIN_SLOWDOWN_AFTER`, default 10; never refused for this).
    package var loginSlowdownAfter = 10
    /// Registrations per client address per hour (`REGISTRATIONS_PER_ADDRESS_PER_HOUR`, default 20).
    package var registrationsPerAddressPerHour = 20
    /// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, comma-separated CIDRs;
    /// default none: the TCP peer is the client).
    var trustedProxies: [CIDR] = []
    /// How long a checked account state may be reused for access tokens
    /// (`ACCOUNT_CACHE_SECONDS`, default 5; 0 checks the database on every request).
    package var accountCache: Duration = .seconds(5)
    /// A refresh-token family ends this long after its sign-in, however often it is
    /// refreshed (`REFRESH_FAMILY_MAX_DAYS`, default 90).
    package var refreshFamilyLifetime: Duration = .seconds(90 * 86_400)
    /// Orders a user may have waiting for payment at once (`MAX_UNPAID_ORDERS_PER_USER`, default 3).
    package var maxUnpaidOrdersPerUser = 3
    /// The separate listener for `GET /metrics` (`METRICS_HOST`, default 127.0.0.1, and
    /// `METRICS_PORT`, default 9464; `METRICS_PORT=off` serves no metrics). The API's own port
    /// does not serve them.
    package var metricsHost = "127.0.0.1"
    package var metricsPort: Int? = 9464
    /// Tax on the order subtotal in basis points (`TAX_RATE_BPS`, default 0; 1900 is 19 %).
    package var taxRateBasisPoints = 0
    /// Flat shipping per order in cents (`SHIPPING_FLAT_CENTS`, default 0).
    package var shippingFlatCents = 0
    /// Subtotal from which shipping is free (`FREE_SHIPPING_OVER_CENTS`; unset: never).
    package var freeShippingOverCents: Int?
    /// Idle time after which a cart is emptied (`CART_IDLE_EXPIRY_HOURS`, default 72).
    package var cartIdleExpiry: Duration = .seconds(72 * 3_600)
    /// Origins allowed by CORS (`CORS_ALLOWED_ORIGINS`, comma-separated; default none).
    package var corsAllowedOrigins: Set<String> = []
    /// The payment provider (`PAYMENT_PROVIDER`, `PAYMENT_CAPTURE`, `STRIPE_*`, see
    /// ``PaymentSettings``): the API opens client-confirmed payments with it and checks its
    /// webhooks' signatures.
    package var payments = PaymentSettings()
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS` (default false): merchant webhook endpoints may be http
    /// and private or loopback addresses (local development and tests only).
    package var webhookAllowPrivateTargets = false
    /// `WEBHOOK_SECRET_OVERLAP_SECONDS` (default 86400): how long a rotated-out webhook secret
    /// keeps signing next to the new one.
    package var webhookSecretOverlap: Duration = .seconds(86_400)
    /// `WEBHOOK_SECRETS_KEY`: seals each new or rotated webhook signing secret before it is
    /// stored (see ``SecretSeal``); nil stores them in clear.
    package var webhookSecretSeal: SecretSeal?
    /// The operator console under `/admin` (``ConsoleSettings``; its session settings serve
    /// the storefront's sessions too).
    package var console = ConsoleSettings()
    /// `STOREFRONT_ENABLED` (default true): serve the storefront at `/`.
    package var storefrontEnabled = true
    /// `STOREFRONT_PUBLIC_URL` (e.g. `https://shop.example.com`): the shop's address as
    /// customers reach it, for the sitemap's and the pages' absolute links. Unset: the
    /// request's own `Host`.
    package var storefrontPublicURL: URL?

    /// Values of `JWT_SECRET` published in this repository or its documentation: a secret
    /// anyone can read signs nothing.
    static let placeholderSecrets: Set<String> = [
        "local-development-secret-change-me-0123456789", "change-me-to-at-least-32-random-characters", "change-me",
    ]

    /// Sets `TRUSTED_PROXIES` from code (tests); malformed networks are errors.
    package mutating func trustProxies(_ networks: [String]) throws {
        trustedProxies = try networks.map { text in
            guard let network = CIDR(text) else { throw ConfigurationError("TRUSTED_PROXIES: \(text) is not an address or a network (CIDR)") }
            return network
        }
    }

    /// Creates a configuration with the given servers and defaults elsewhere.
    package init(postgres: PostgresConfiguration, amqp: AMQPConfiguration) {
        self.shared = ProcessSettings(postgres: postgres, amqp: amqp, defaults: Self.sharedDefaults)
    }

    /// Reads the variables above; a malformed value is an error, not a silent default.
    package static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> APIConfiguration {
        let env = EnvironmentReader(environment)
        var config = APIConfiguration(shared: try ProcessSettings.read(env, defaults: sharedDefaults))
        if let host = env.string("HTTP_HOST") { config.host = host }
        if let port = try env.port("HTTP_PORT") { config.port = port }
        config.jwtSecret = environment["JWT_SECRET"] ?? ""
        if let rate = try env.positiveDecimal("RATE_LIMIT_PER_SECOND") { config.rateLimitPerSecond = rate }
        if let burst = try env.positive("RATE_LIMIT_BURST") { config.rateLimitBurst = burst }
        if let n = try env.positive("LOGIN_MAX_FAILURES_PER_ACCOUNT") { config.loginMaxFailuresPerAccount = n }
        if let n = try env.positive("LOGIN_MAX_FAILURES_PER_ADDRESS") { config.loginMaxFailuresPerAddress = n }
        if let window = try env.seconds("LOGIN_THROTTLE_WINDOW_SECONDS") { config.loginThrottleWindow = window }
        if let n = try env.positive("LOGIN_SLOWDOWN_AFTER") { config.loginSlowdownAfter = n }
        if let n = try env.positive("REGISTRATIONS_PER_ADDRESS_PER_HOUR") { config.registrationsPerAddressPerHour = n }
        if let days = try env.positive("REFRESH_FAMILY_MAX_DAYS", unit: "days") { config.refreshFamilyLifetime = .seconds(days * 86_400) }
        if let n = try env.positive("MAX_UNPAID_ORDERS_PER_USER") { config.maxUnpaidOrdersPerUser = n }
        if let n = try env.nonNegative("TAX_RATE_BPS") { config.taxRateBasisPoints = n }
        if let n = try env.nonNegative("SHIPPING_FLAT_CENTS") { config.shippingFlatCents = n }
        if let n = try env.nonNegative("FREE_SHIPPING_OVER_CENTS") { config.freeShippingOverCents = n }
        if let hours = try env.nonNegative("CART_IDLE_EXPIRY_HOURS", unit: "hours") { config.cartIdleExpiry = .seconds(hours * 3_600) }
        if let seconds = try env.int("ACCOUNT_CACHE_SECONDS", in: 0...60) { config.accountCache = .seconds(seconds) }
        if let networks = env.list("TRUSTED_PROXIES") { try config.trustProxies(networks) }
        if let host = env.string("METRICS_HOST") { config.metricsHost = host }
        if env.string("METRICS_PORT") == "off" {
            config.metricsPort = nil
        } else if let port = try env.int("METRICS_PORT", in: 0...65_535) {
            config.metricsPort = port
        }
        if let origins = env.list("CORS_ALLOWED_ORIGINS") { config.corsAllowedOrigins = Set(origins) }
        if let cost = try env.int("BCRYPT_COST", in: 4...16) { config.bcryptCost = UInt8(cost) }
        config.payments = try PaymentSettings.read(env)
        config.webhookAllowPrivateTargets = env.flag("WEBHOOK_ALLOW_PRIVATE_TARGETS")
        if let overlap = try env.int("WEBHOOK_SECRET_OVERLAP_SECONDS", in: 0...(30 * 86_400)) { config.webhookSecretOverlap = .seconds(overlap) }
        config.webhookSecretSeal = try env.webhookSecretSeal()
        config.console = try ConsoleSettings.read(env)
        if let value = env.string("STOREFRONT_ENABLED") { config.storefrontEnabled = value != "false" }
        if let value = env.string("STOREFRONT_PUBLIC_URL") {
            guard let url = URL(string: value.hasSuffix("/") ? String(value.dropLast()) : value), url.scheme == "https" || url.scheme == "http",
                url.host != nil, url.query == nil, url.path.isEmpty
            else { throw ConfigurationError("STOREFRONT_PUBLIC_URL must be the shop's http(s) address without a path, e.g. https://shop.example.com") }
            config.storefrontPublicURL = url
        }
        return config
    }

    private init(shared: ProcessSettings) { self.shared = shared }
}
