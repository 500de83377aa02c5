import AMQP
import Domain
import Hummingbird
import HummingbirdBcrypt
import HummingbirdWebSocket
import Logging
import Messaging
import Observability
import OperatorTools
import Payments
import Postgres
import ServiceLifecycle
import Settings
import Store

/// Builds the API application: routes, the database pool, the event publisher, the outbox
/// relay and their lifecycle. The `emporium-api` executable only calls this and runs it,
/// so tests run the same code.
package func buildApplication(configuration: APIConfiguration, extraServices: [any Service] = []) async throws -> some ApplicationProtocol {
    var logger = Logger(label: "emporium.api")
    logger.logLevel = configuration.logLevel
    guard configuration.jwtSecret.utf8.count >= 32 else {
        throw ConfigurationError("JWT_SECRET must be set to at least 32 characters")
    }
    guard !APIConfiguration.placeholderSecrets.contains(configuration.jwtSecret) else {
        throw ConfigurationError("JWT_SECRET is a value published with Emporium; generate one (openssl rand -hex 32)")
    }
    let pool = PostgresPool(
        configuration: configuration.postgres.named(APIConfiguration.executableName), maxConnections: configuration.poolSize,
        acquireTimeout: configuration.acquireTimeout, logger: logger)
    var publisherOptions = AMQPPublisher.Options()
    publisherOptions.topology = configuration.names.topology(policy: configuration.policy)
    publisherOptions.reconnectTimeout = .seconds(2)  // a request never waits long on the broker; the relay retries
    let publisher = AMQPPublisher(configuration: configuration.amqp, options: publisherOptions, logger: logger)
    // After-commit marks on a connection of their own (see OutboxPublisher.markPool).
    let marks = PostgresPool(
        configuration: configuration.postgres.named("\(APIConfiguration.executableName) marks"), maxConnections: 1,
        acquireTimeout: configuration.acquireTimeout, logger: logger)
    let outbox = OutboxPublisher(publisher: publisher, pool: pool, markPool: marks, exchange: configuration.names.eventsExchange, logger: logger)
    let tokens = await TokenService(secret: configuration.jwtSecret)
    let hasher = PasswordHasher(cost: configuration.bcryptCost)

    let router = Router(context: AppRequestContext.self)
    // A server span per request, continuing an incoming traceparent (no-op without a tracer).
    router.middlewares.add(TracingMiddleware())
    // First: everything after it keys on the client address it decides.
    router.middlewares.add(ClientAddressMiddleware(trusted: configuration.trustedProxies))
    router.middlewares.add(ResponseHeadersMiddleware(allowedOrigins: configuration.corsAllowedOrigins))
    router.middlewares.add(AccessLogMiddleware())
    router.middlewares.add(ProblemMiddleware())
    router.middlewares.add(HTTPMetricsMiddleware())
    router.middlewares.add(RateLimitMiddleware(limiter: RateLimiter(rate: configuration.rateLimitPerSecond, burst: configuration.rateLimitBurst)))
    let routeTable = RouteTable()
    router.middlewares.add(MethodNotAllowedMiddleware(table: routeTable))
    HealthController(checks: [("postgres", Readiness.postgres(pool)), ("rabbitmq", Readiness.rabbitMQ(configuration.amqp, publisher: publisher))])
        .register(on: router)

    let api = router.group("api/v1")
    let accounts = AccountDirectory(pool: pool, ttl: configuration.accountCache)
    let throttle = SignInThrottle(
        pool: pool, perPair: configuration.loginMaxFailuresPerAccount, perAddress: configuration.loginMaxFailuresPerAddress,
        window: configuration.loginThrottleWindow, slowdownAfter: configuration.loginSlowdownAfter)
    let registrations = RateLimiter(rate: Double(configuration.registrationsPerAddressPerHour) / 3_600, burst: configuration.registrationsPerAddressPerHour)
    let authenticated = api.group().add(middleware: AuthMiddleware(tokens: tokens, accounts: accounts))
    let decoyHash = Bcrypt.hash("decoy-password", cost: configuration.bcryptCost)
    let auth = AuthController(
        pool: pool, tokens: tokens, hasher: hasher, decoyHash: decoyHash, throttle: throttle,
        registrations: registrations, accounts: accounts, familyLifetime: configuration.refreshFamilyLifetime
    )
    auth.register(on: api.group("auth"), authenticated: authenticated)
    // Catalog reads are public; a token, when sent, lets an admin or a product's seller see it inactive.
    let catalog = api.group().add(middleware: OptionalAuthMiddleware(tokens: tokens, accounts: accounts))
    ProductsController(pool: pool).register(public: catalog, authenticated: authenticated)
    CategoriesController(pool: pool).register(public: api, authenticated: authenticated)
    let reviews = ReviewsController(pool: pool)
    reviews.register(public: catalog, authenticated: authenticated)
    let carts = CartController(pool: pool, expiry: configuration.cartIdleExpiry)
    carts.register(on: authenticated)
    let pricing = Pricing(
        taxRateBasisPoints: configuration.taxRateBasisPoints, shippingFlatCents: configuration.shippingFlatCents,
        freeShippingOverCents: configuration.freeShippingOverCents)
    let orders = OrdersController(
        pool: pool, outbox: outbox, names: configuration.names, pricing: pricing, cartExpiry: configuration.cartIdleExpiry,
        maxUnpaidOrders: configuration.maxUnpaidOrdersPerUser
    )
    orders.register(on: authenticated)
    let provider: any PaymentProvider =
        if let stripe = configuration.payments.stripe {
            StripePaymentProvider(client: StripeClient(settings: stripe), captureMode: configuration.payments.capture, objects: ProviderObjectStore(pool: pool))
        } else {
            FakePaymentProvider(ledger: pool)
        }
    let payments = PaymentsController(pool: pool, outbox: outbox, names: configuration.names, provider: provider)
    payments.register(on: authenticated)
    RefundsController(pool: pool, operations: OrderOperations(pool: pool, outbox: outbox, names: configuration.names)).register(on: authenticated)
    WebhookEndpointsController(
        pool: pool, allowPrivateTargets: configuration.webhookAllowPrivateTargets, secretOverlap: configuration.webhookSecretOverlap,
        webhooks: WebhookStore(seal: configuration.webhookSecretSeal)
    )
    .register(on: authenticated)
    if let stripe = configuration.payments.stripe, (stripe.webhookSecret ?? "").isEmpty {
        throw ConfigurationError("PAYMENT_PROVIDER=stripe needs STRIPE_WEBHOOK_SECRET (the signing secret of the endpoint registered with Stripe)")
    }
    StripeWebhookController(
        pool: pool, outbox: outbox, names: configuration.names, secret: configuration.payments.stripe?.webhookSecret,
        tolerance: configuration.payments.stripe?.webhookTolerance ?? .seconds(300)
    )
    .register(on: api)
    UsersController(pool: pool, accounts: accounts).register(on: authenticated)
    // Every event, for live pages and order streams: connects when the first one is opened.
    let feed = EventFanOut(amqp: configuration.amqp, names: configuration.names, instance: ProcessIdentity.current, logger: logger)
    let services: [any Service] = [feed]
    OrderEventsController(pool: pool, feed: feed).register(on: authenticated)
    let document = try APIContract.bundled()
    OpenAPIController(document: document).register(on: router)
    // The routes so far are the JSON API's, held to its contract; the browser faces below
    // serve HTML and are not part of it.
    let apiRoutes = Set(router.routes.map { "\($0.method.rawValue) \($0.path)" })
    let signIn = PasswordSignIn(pool: pool, hasher: hasher, decoyHash: decoyHash, throttle: throttle)
    let orderOperations = OrderOperations(pool: pool, outbox: outbox, names: configuration.names)
    if configuration.console.enabled {
        let status = SystemStatus(amqp: configuration.amqp, names: configuration.names, pool: pool)
        // One reading a second for all the overviews open on this process.
        let overview = CoalescedReading { [logger] in await OverviewPages.read(status, pool: pool, logger: logger) }
        ConsoleController(
            pages: try await ConsolePages(),
            sessions: WebSessions(kind: .console, pool: pool, accounts: accounts, settings: configuration.console),
            signIn: signIn,
            dependencies: ConsoleDependencies(
                pool: pool, orders: orderOperations, products: ProductsController(pool: pool), categories: CategoriesController(pool: pool),
                accounts: AccountAdministration(pool: pool, accounts: accounts), feed: feed, overview: overview,
                deadLetters: DeadLetters(amqp: configuration.amqp, names: configuration.names), settings: configuration.console, logger: logger)
        )
        .register(on: router)
    }
    if configuration.storefrontEnabled {
        let shopPages = try await ConsolePages(face: "shop", policy: ConsolePages.storefrontPolicy)
        router.middlewares.add(ShopNotFoundMiddleware(pages: shopPages, table: routeTable))
        StorefrontController(
            pages: shopPages,
            sessions: WebSessions(kind: .shop, pool: pool, accounts: accounts, settings: configuration.console),
            signIn: signIn,
            shop: StorefrontDependencies(
                pool: pool, carts: carts, orders: orders, operations: orderOperations, auth: auth, reviews: reviews, feed: feed, pricing: pricing,
                payments: payments, cards: ShopCards(configuration.payments), publicURL: configuration.storefrontPublicURL)
        )
        .register(on: router)
    }
    routeTable.load(router.routes)
    let drift = document.mismatches(served: apiRoutes)
    guard drift.undocumented.isEmpty, drift.unrouted.isEmpty else {
        throw ConfigurationError(
            "Sources/API/Resources/openapi.json does not match the routes: "
                + "undocumented \(drift.undocumented), unrouted \(drift.unrouted)")
    }

    let socket = OrderEventSocket(pool: pool, feed: feed, tokens: tokens, accounts: accounts)
    return Application(
        router: router,
        // Plain HTTP/1.1, and the order event WebSocket upgraded before routing.
        server: .http1WebSocketUpgrade { request, _, logger in await socket.shouldUpgrade(request, logger: logger) },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: APIConfiguration.executableName),
        // A ServiceGroup stops its services in reverse order, the HTTP server (added last by
        // Hummingbird) first: then the relay publishes and marks its last batch while the
        // pool it marks through is still open, and the pool closes after it.
        services: extraServices + services + [
            ClosePoolOnShutdown(pool: pool), ClosePoolOnShutdown(pool: marks), OutboxRelay(publisher: outbox, grace: configuration.shared.relayGrace),
        ]
            + (configuration.metricsPort.map { [MetricsListener.application(host: configuration.metricsHost, port: $0, logger: logger)] } ?? []),
        logger: logger)
}
