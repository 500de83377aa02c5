import AMQP
import Foundation
import Logging
import Messaging
import Postgres

/// Everything the API reads from its environment.
public struct APIConfiguration: Sendable {
    /// Address to listen on (`HTTP_HOST`, default `127.0.0.1`; containers set `0.0.0.0`).
    public var host: String = "127.0.0.1"
    /// Port to listen on (`HTTP_PORT`, default 8080).
    public var port: Int = 8080
    /// Log level (`LOG_LEVEL`: trace, debug, info, notice, warning, error, critical; default info).
    public var logLevel: Logger.Level = .info
    /// PostgreSQL (`DATABASE_URL`, `DB_CONNECT_TIMEOUT_MS`, `DB_STATEMENT_TIMEOUT_MS`).
    public var postgres: PostgresConfiguration
    /// Pool size (`DB_POOL_SIZE`, default 10).
    public var poolSize: Int = 10
    /// Longest wait for a pooled connection (`DB_ACQUIRE_TIMEOUT_MS`, default 2000); past it
    /// a request gets 503 instead of hanging.
    public var acquireTimeout: Duration = .seconds(2)
    /// RabbitMQ (`AMQP_URL`, `AMQP_HEARTBEAT_SECONDS`).
    public var amqp: AMQPConfiguration
    /// Exchange and queue names (`EMPORIUM_NAMESPACE`, default `emporium`).
    public var names = MessagingNames()
    /// Queue arguments the API declares with the topology (must match the workers').
    public var policy = QueuePolicy()
    /// HMAC key for access tokens (`JWT_SECRET`, required, at least 32 characters).
    public var jwtSecret = ""
    /// bcrypt cost for new password hashes (`BCRYPT_COST`, 4–16, default 11).
    public var bcryptCost: UInt8 = 11
    /// Requests per second per client address (`RATE_LIMIT_PER_SECOND`, default 50).
    public var rateLimitPerSecond: Double = 50
    /// Burst per client address (`RATE_LIMIT_BURST`, default 100).
    public var rateLimitBurst = 100
    /// Failed logins allowed per account (`LOGIN_MAX_FAILURES_PER_ACCOUNT`, default 5) and per
    /// client address (`LOGIN_MAX_FAILURES_PER_ADDRESS`, default 20) within
    /// `LOGIN_THROTTLE_WINDOW_SECONDS` (default 900).
    public var loginMaxFailuresPerAccount = 5
    public var loginMaxFailuresPerAddress = 20
    public var loginThrottleWindow: Duration = .seconds(900)
    /// Failures of one account from all addresses after which each attempt is delayed
    /// (`LOGIN_SLOWDOWN_AFTER`, default 10; never refused for this).
    public var loginSlowdownAfter = 10
    /// Registrations per client address per hour (`REGISTRATIONS_PER_ADDRESS_PER_HOUR`, default 20).
    public var registrationsPerAddressPerHour = 20
    /// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, comma-separated CIDRs;
    /// default none: the TCP peer is the client).
    var trustedProxies: [CIDR] = []
    /// How long a checked account state may be reused for access tokens
    /// (`ACCOUNT_CACHE_SECONDS`, default 5; 0 checks the database on every request).
    public var accountCache: Duration = .seconds(5)
    /// A refresh-token family ends this long after its sign-in, however often it is
    /// refreshed (`REFRESH_FAMILY_MAX_DAYS`, default 90).
    public var refreshFamilyLifetime: Duration = .seconds(90 * 86_400)
    /// Orders a user may have waiting for payment at once (`MAX_UNPAID_ORDERS_PER_USER`, default 3).
    public var maxUnpaidOrdersPerUser = 3
    /// The separate listener for `GET /metrics` (`METRICS_HOST`, default 127.0.0.1, and
    /// `METRICS_PORT`, default 9464; `METRICS_PORT=off` serves no metrics). The API's own port
    /// does not serve them.
    public var metricsHost = "127.0.0.1"
    public var metricsPort: Int? = 9464
    /// Tax on the order subtotal in basis points (`TAX_RATE_BPS`, default 0; 1900 is 19 %).
    public var taxRateBasisPoints = 0
    /// Flat shipping per order in cents (`SHIPPING_FLAT_CENTS`, default 0).
    public var shippingFlatCents = 0
    /// Subtotal from which shipping is free (`FREE_SHIPPING_OVER_CENTS`; unset: never).
    public var freeShippingOverCents: Int?
    /// Idle time after which a cart is emptied (`CART_IDLE_EXPIRY_HOURS`, default 72).
    public var cartIdleExpiry: Duration = .seconds(72 * 3_600)
    /// Origins allowed by CORS (`CORS_ALLOWED_ORIGINS`, comma-separated; default none).
    public var corsAllowedOrigins: Set<String> = []

    /// Values of `JWT_SECRET` published in this repository or its documentation: a secret
    /// anyone can read signs nothing.
    static let placeholderSecrets: Set<String> = [
        "local-development-secret-change-me-0123456789", "change-me-to-at-least-32-random-characters", "change-me",
    ]

    /// Sets `TRUSTED_PROXIES` from code (tests); malformed networks are errors.
    public mutating func trustProxies(_ networks: [String]) throws {
        trustedProxies = try networks.map { text in
            guard let network = CIDR(text) else { throw ConfigurationError("TRUSTED_PROXIES: \(text) is not an address or a network (CIDR)") }
            return network
        }
    }

    /// Creates a configuration with the given servers and defaults elsewhere.
    public init(postgres: PostgresConfiguration, amqp: AMQPConfiguration) {
        self.postgres = postgres
        self.amqp = amqp
    }

    /// Reads the variables above; a malformed value is an error, not a silent default.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> APIConfiguration {
        // A request that needs the database answers within about 2 s even when the database
        // hangs (`DB_QUERY_TIMEOUT_MS`, default 2000): a 503 the client can retry beats a hang.
        var config = APIConfiguration(
            postgres: try .fromEnvironment(environment, defaultQueryTimeout: .seconds(2)), amqp: try .fromEnvironment(environment))
        // Likewise opening a session (`DB_CONNECT_TIMEOUT_MS`, default 2000 in the API).
        if environment["DB_CONNECT_TIMEOUT_MS"] == nil { config.postgres.connectTimeout = .seconds(2) }
        if let host = environment["HTTP_HOST"] { config.host = host }
        config.names = .fromEnvironment(environment)
        do { config.policy = try QueuePolicy.fromEnvironment(environment) } catch { throw ConfigurationError("\(error)") }
        config.jwtSecret = environment["JWT_SECRET"] ?? ""
        if let value = environment["RATE_LIMIT_PER_SECOND"] {
            guard let rate = Double(value), rate > 0 else { throw ConfigurationError("RATE_LIMIT_PER_SECOND must be a positive number") }
            config.rateLimitPerSecond = rate
        }
        if let value = environment["RATE_LIMIT_BURST"] {
            guard let burst = Int(value), burst > 0 else { throw ConfigurationError("RATE_LIMIT_BURST must be a positive number") }
            config.rateLimitBurst = burst
        }
        for (key, apply) in [
            ("LOGIN_MAX_FAILURES_PER_ACCOUNT", { (n: Int) in config.loginMaxFailuresPerAccount = n }),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", { (n: Int) in config.loginMaxFailuresPerAddress = n }),
            ("LOGIN_THROTTLE_WINDOW_SECONDS", { (n: Int) in config.loginThrottleWindow = .seconds(n) }),
            ("LOGIN_SLOWDOWN_AFTER", { (n: Int) in config.loginSlowdownAfter = n }),
            ("REGISTRATIONS_PER_ADDRESS_PER_HOUR", { (n: Int) in config.registrationsPerAddressPerHour = n }),
            ("REFRESH_FAMILY_MAX_DAYS", { (n: Int) in config.refreshFamilyLifetime = .seconds(n * 86_400) }),
            ("MAX_UNPAID_ORDERS_PER_USER", { (n: Int) in config.maxUnpaidOrdersPerUser = n }),
        ] {
            if let value = environment[key] {
                guard let number = Int(value), number > 0 else { throw ConfigurationError("\(key) must be a positive number") }
                apply(number)
            }
        }
        for (key, apply) in [
            ("TAX_RATE_BPS", { (n: Int) in config.taxRateBasisPoints = n }),
            ("SHIPPING_FLAT_CENTS", { (n: Int) in config.shippingFlatCents = n }),
            ("FREE_SHIPPING_OVER_CENTS", { (n: Int) in config.freeShippingOverCents = n }),
            ("CART_IDLE_EXPIRY_HOURS", { (n: Int) in config.cartIdleExpiry = .seconds(n * 3_600) }),
        ] {
            if let value = environment[key] {
                guard let number = Int(value), number >= 0 else { throw ConfigurationError("\(key) must be a non-negative whole number") }
                apply(number)
            }
        }
        if let value = environment["ACCOUNT_CACHE_SECONDS"] {
            guard let seconds = Int(value), (0...60).contains(seconds) else { throw ConfigurationError("ACCOUNT_CACHE_SECONDS must be from 0 to 60") }
            config.accountCache = .seconds(seconds)
        }
        if let value = environment["TRUSTED_PROXIES"] {
            try config.trustProxies(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
        if let host = environment["METRICS_HOST"], !host.isEmpty { config.metricsHost = host }
        if let value = environment["METRICS_PORT"] {
            if value == "off" {
                config.metricsPort = nil
            } else {
                guard let port = Int(value), (0...65535).contains(port) else { throw ConfigurationError("METRICS_PORT must be a port number or off") }
                config.metricsPort = port
            }
        }
        if let value = environment["CORS_ALLOWED_ORIGINS"] {
            config.corsAllowedOrigins = Set(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
        if let value = environment["BCRYPT_COST"] {
            guard let cost = UInt8(value), (4...16).contains(cost) else { throw ConfigurationError("BCRYPT_COST must be from 4 to 16") }
            config.bcryptCost = cost
        }
        if let value = environment["HTTP_PORT"] {
            guard let port = Int(value), (1...65535).contains(port) else { throw ConfigurationError("HTTP_PORT must be a port number, not \(value)") }
            config.port = port
        }
        if let value = environment["LOG_LEVEL"] {
            guard let level = Logger.Level(rawValue: value.lowercased()) else { throw ConfigurationError("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical") }
            config.logLevel = level
        }
        if let value = environment["DB_POOL_SIZE"] {
            guard let size = Int(value), size > 0 else { throw ConfigurationError("DB_POOL_SIZE must be a positive number") }
            config.poolSize = size
        }
        if let value = environment["DB_ACQUIRE_TIMEOUT_MS"] {
            guard let ms = Int(value), ms > 0 else { throw ConfigurationError("DB_ACQUIRE_TIMEOUT_MS must be a positive number") }
            config.acquireTimeout = .milliseconds(ms)
        }
        return config
    }
}

/// A configuration value that cannot be used.
public struct ConfigurationError: Error, CustomStringConvertible {
    /// The message for the operator.
    public let description: String
    /// Creates the error with an operator-facing message.
    public init(_ description: String) { self.description = description }
}
