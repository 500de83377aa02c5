import AMQP
import API
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Messaging
import Operations
import Payments
import Postgres
import ServiceLifecycle
import TestSupport
import Testing
import Workers

/// A whole Emporium for one test: its own migrated database, its own exchange and queue
/// names on the real broker, the four workers running in-process (the same services the
/// worker executables run), and the API served on a free port.
struct Stack {
    let database: PostgresConfiguration
    let names: MessagingNames
    let amqp: AMQPConfiguration
    let db: PostgresPool
    let client: any TestClientProtocol

    static let jwtSecret = "integration-test-secret-0123456789abcdef"

    /// Options for unusual setups.
    struct Options {
        /// Run the workers in this process.
        var inProcessWorkers = true
        /// Point the API's publisher at a dead broker (to leave outbox rows unpublished).
        var apiBrokerUnreachable = false
        /// Fake provider latency.
        var providerLatency: Duration = .zero
        /// Short delays so retries happen within a test.
        var policy: QueuePolicy = {
            var policy = QueuePolicy()
            policy.retryDelays = [.milliseconds(300), .milliseconds(1_200)]
            policy.maxAttempts = 4
            policy.deliveryLimit = 3
            return policy
        }()
        /// Roles not to run in-process.
        var excludedRoles: Set<WorkerRole> = []
        /// The payment timeout the order worker's sweeper applies (to manual orders too,
        /// unless `manualPaymentTimeout` is set).
        var paymentTimeout: Duration = .seconds(900)
        var manualPaymentTimeout: Duration?
        /// Manual-payment orders a user may have waiting at once.
        var maxUnpaidOrders = 3
        /// Networks whose X-Forwarded-For the API believes.
        var trustedProxies: [String] = []
        /// Registrations per address and hour (tests register many customers from one address).
        var registrationsPerHour = 1_000_000
        /// The API's pool (small: dozens of stacks share the server in make test).
        var apiPoolSize = 5
        /// bcrypt cost of the API (cheap in tests; the production default is 11).
        var bcryptCost: UInt8 = 4
        /// Tax (basis points) and flat shipping (cents); zero keeps totals equal to subtotals.
        var pricing: (taxBasisPoints: Int, shippingCents: Int, freeOverCents: Int?) = (0, 0, nil)
        /// Per-client rate limit (tests send many requests from one address).
        var rateLimit: (perSecond: Double, burst: Int) = (100_000, 100_000)
        /// The saga reconciler of the in-process order worker. Tests that count retries and
        /// provider calls exactly must not see a re-drive, so it waits ten minutes here unless
        /// a test (the reconciler's own) shortens it.
        /// The outbox relay's grace (every process of the stack). Tests that count provider
        /// calls exactly set it long: on a loaded machine an after-commit publish can take
        /// longer than the default 2 s, and the relay's second copy would call again.
        var relayGrace: Duration?
        /// The payment provider of the API and the payment worker (the fake unless a test
        /// points both at localstripe, see ``Localstripe``).
        var payments = PaymentSettings()
        /// Merchant webhook delivery settings of the notification worker; private targets
        /// (the tests' loopback receivers) are allowed unless a test says otherwise.
        var webhooks: WebhookDispatcher.Settings = {
            var settings = WebhookDispatcher.Settings()
            settings.sender.allowPrivateTargets = true
            settings.pollInterval = .milliseconds(100)
            settings.secretSeal = try? SecretSeal(base64Key: Stack.webhookSecretsKey)
            return settings
        }()
        var saga: SagaReconciler.Settings = {
            var settings = SagaReconciler.Settings()
            settings.stall = .seconds(600)
            return settings
        }()
    }

    /// The `WEBHOOK_SECRETS_KEY` of every stack of this test process (random per process):
    /// stacks seal webhook signing secrets, as a deployment should.
    static let webhookSecretsKey = SecretSealTestKeys.make()

    static func run(_ options: Options = Options(), _ body: @Sendable (Stack) async throws -> Void) async throws {
        try await TestEnvironment.withMigratedDatabase { database in
            let names = MessagingNames(namespace: TestEnvironment.uniqueName("it"))
            let amqp = try TestEnvironment.amqp()
            var logger = Logger(label: "test.stack")
            logger.logLevel = .warning

            let workers = try makeWorkers(database: database, names: names, amqp: amqp, options: options)
            let workerTask = Task { try await workers.run() }

            var apiConfig = APIConfiguration(postgres: database, amqp: amqp)
            if options.apiBrokerUnreachable { apiConfig.amqp.port = 1 }
            apiConfig.port = 0
            apiConfig.names = names
            apiConfig.policy = options.policy
            if let grace = options.relayGrace { apiConfig.shared.relayGrace = grace }
            apiConfig.rateLimitPerSecond = options.rateLimit.perSecond
            apiConfig.rateLimitBurst = options.rateLimit.burst
            apiConfig.corsAllowedOrigins = ["https://shop.example"]
            apiConfig.taxRateBasisPoints = options.pricing.taxBasisPoints
            apiConfig.shippingFlatCents = options.pricing.shippingCents
            apiConfig.freeShippingOverCents = options.pricing.freeOverCents
            apiConfig.jwtSecret = jwtSecret
            apiConfig.maxUnpaidOrdersPerUser = options.maxUnpaidOrders
            apiConfig.registrationsPerAddressPerHour = options.registrationsPerHour
            apiConfig.metricsPort = 0
            // Dozens of stacks run at once in make test: each takes few sessions.
            apiConfig.poolSize = options.apiPoolSize
            try apiConfig.trustProxies(options.trustedProxies)
            apiConfig.bcryptCost = options.bcryptCost
            apiConfig.payments = options.payments
            apiConfig.webhookAllowPrivateTargets = options.webhooks.sender.allowPrivateTargets
            apiConfig.webhookSecretSeal = options.webhooks.secretSeal
            apiConfig.logLevel = .warning
            let app = try await buildApplication(configuration: apiConfig)
            let pool = PostgresPool(configuration: database, maxConnections: 4)
            do {
                try await app.test(.live) { client in
                    try await body(Stack(database: database, names: names, amqp: amqp, db: pool, client: client))
                }
            } catch {
                await workers.triggerGracefulShutdown()
                _ = await workerTask.result
                await pool.close()
                await cleanUp(names: names, amqp: amqp)
                throw error
            }
            await workers.triggerGracefulShutdown()
            _ = await workerTask.result
            await pool.close()
            await cleanUp(names: names, amqp: amqp)
        }
    }

    /// The four workers' services (what the worker executables run) as one group.
    static func makeWorkers(
        database: PostgresConfiguration, names: MessagingNames, amqp: AMQPConfiguration, options: Options = Options(), forceEnabled: Bool = false
    ) throws -> ServiceGroup {
        var logger = Logger(label: "test.workers")
        logger.logLevel = .critical
        var services: [any Service] = []
        if options.inProcessWorkers || forceEnabled {
            var config = WorkerConfiguration(postgres: database, amqp: amqp, names: names)
            config.providerLatency = options.providerLatency
            config.poolSize = 4
            config.policy = options.policy
            config.drainTimeout = .seconds(2)
            config.paymentTimeout = options.paymentTimeout
            config.manualPaymentTimeout = options.manualPaymentTimeout ?? options.paymentTimeout
            config.sweeperInterval = .milliseconds(200)
            config.saga = options.saga
            config.payments = options.payments
            config.webhooks = options.webhooks
            if let grace = options.relayGrace { config.shared.relayGrace = grace }
            for role in WorkerRole.allCases where !options.excludedRoles.contains(role) {
                services += try WorkerMain.services(role: role, configuration: config, logger: logger)
            }
        }
        return ServiceGroup(services: services, gracefulShutdownSignals: [], logger: logger)
    }

    /// Runs one role's worker in this process, apart from the stack's own workers, so a test
    /// can stop and start it (with the stack's options).
    func startRole(_ role: WorkerRole, options: Options = Options()) throws -> RunningRole {
        var options = options
        options.inProcessWorkers = true
        options.excludedRoles = Set(WorkerRole.allCases).subtracting([role])
        let group = try Self.makeWorkers(database: database, names: names, amqp: amqp, options: options)
        return RunningRole(group: group, task: Task { try await group.run() })
    }

    /// A role started by ``startRole(_:options:)``.
    struct RunningRole {
        let group: ServiceGroup
        let task: Task<Void, any Error>
        /// Graceful shutdown, waiting until every service ended.
        func stop() async {
            await group.triggerGracefulShutdown()
            _ = await task.result
        }
    }

    /// Messages ready in a role's work queue.
    func queueDepth(_ role: WorkerRole) async throws -> Int {
        let connection = try await AMQPConnection.connect(configuration: amqp)
        defer { Task { await connection.close() } }
        return try await connection.queueStatus(names.queue(role)).messages
    }

    /// Messages in a role's dead-letter queue.
    func deadLetters(_ role: WorkerRole) async throws -> Int {
        let connection = try await AMQPConnection.connect(configuration: amqp)
        defer { Task { await connection.close() } }
        return try await connection.queueStatus(names.deadLetterQueue(role)).messages
    }

    /// Purges a role's work queue (what an operator's mistake looks like); returns how many.
    @discardableResult
    func purge(_ role: WorkerRole) async throws -> Int {
        let connection = try await AMQPConnection.connect(configuration: amqp)
        defer { Task { await connection.close() } }
        return try await connection.purgeQueue(names.queue(role))
    }

    private static func cleanUp(names: MessagingNames, amqp: AMQPConfiguration) async {
        guard let admin = try? await AMQPConnection.connect(configuration: amqp) else { return }
        for role in WorkerRole.allCases {
            try? await admin.deleteQueue(names.queue(role))
            try? await admin.deleteQueue(names.deadLetterQueue(role))
            for delay in [300, 500, 1_000, 1_200, 2_000, 5_000, 30_000].map(Duration.milliseconds) {
                try? await admin.deleteQueue(names.retryQueue(role, delay: delay))
            }
        }
        try? await admin.deleteExchange(names.eventsExchange)
        try? await admin.deleteExchange(names.deadLetterExchange)
        await admin.close()
    }

    // MARK: HTTP helpers

    /// The port the stack's API listens on (for clients of one's own).
    var port: Int { client.port ?? 0 }

    struct HTTPResult: Sendable {
        let status: HTTPResponse.Status
        let body: String
        let headers: HTTPFields
        /// The body as a JSON object.
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
    }

    @discardableResult
    func request(_ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: Any? = nil, headers extra: HTTPFields = [:]) async throws
        -> HTTPResult
    {
        var headers = extra
        if let token { headers[.authorization] = "Bearer \(token)" }
        var body: ByteBuffer?
        if let json {
            headers[.contentType] = "application/json"
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
        }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body) { response in
            HTTPResult(status: response.status, body: String(buffer: response.body), headers: response.headers)
        }
    }

    /// Registers and logs in a customer; returns (user id, access token).
    func customer(_ name: String = TestEnvironment.uniqueName("buyer")) async throws -> (UUID, String) {
        let email = "\(name)@example.com"
        let registered = try await request(
            .post, "/api/v1/auth/register", json: ["email": email, "password": "correct horse battery", "first_name": "Test", "last_name": name])
        guard registered.status == .created, let id = uuid(registered.json["id"]) else {
            throw TestFailure("register failed: \(registered.status) \(registered.body)")
        }
        return (id, try await login(email, "correct horse battery"))
    }

    func login(_ email: String, _ password: String) async throws -> String {
        let response = try await request(.post, "/api/v1/auth/login", json: ["email": email, "password": password])
        guard response.status == .ok, let token = response.json["access_token"] as? String else {
            throw TestFailure("login failed: \(response.status) \(response.body)")
        }
        return token
    }

    /// An ADMIN account (created directly in the database, as `emporium user create` does).
    func admin() async throws -> String {
        let email = "\(TestEnvironment.uniqueName("admin"))@example.com"
        var quiet = Logger(label: "test")
        quiet.logLevel = .error
        try await Accounts(pool: db, bcryptCost: 4).createUser(email: email, password: "admin password", role: .admin, firstName: "Ada", lastName: "Admin")
        return try await login(email, "admin password")
    }

    /// Creates a product as `adminToken`; returns its id.
    func product(_ adminToken: String, stock: Int, priceCents: Int = 1_000) async throws -> UUID {
        let created = try await request(
            .post, "/api/v1/products", token: adminToken,
            json: [
                "name": "Widget", "description": "A test widget", "sku": TestEnvironment.uniqueName("SKU"),
                "price_cents": priceCents, "currency": "EUR", "stock": stock,
            ])
        guard created.status == .created, let id = uuid(created.json["id"]) else {
            throw TestFailure("product create failed: \(created.status) \(created.body)")
        }
        return id
    }

    func addToCart(_ token: String, _ productId: UUID, quantity: Int) async throws {
        let added = try await request(.post, "/api/v1/cart/items", token: token, json: ["product_id": productId.uuidString, "quantity": quantity])
        guard added.status == .created else { throw TestFailure("add to cart failed: \(added.status) \(added.body)") }
    }

    static func orderBody(_ paymentMethod: String = "tok_visa") -> [String: Any] {
        ["payment_method": paymentMethod, "shipping_address": ["line1": "1 Main Street", "city": "Berlin", "postal_code": "10115", "country": "DE"]]
    }

    /// Places the cart as an order; returns its id.
    func placeOrder(_ token: String, paymentMethod: String = "tok_visa", key: String = UUID().uuidString) async throws -> UUID {
        let placed = try await request(
            .post, "/api/v1/orders", token: token, json: Self.orderBody(paymentMethod), headers: [HTTPField.Name("Idempotency-Key")!: key])
        guard placed.status == .created, let id = uuid(placed.json["id"]) else {
            throw TestFailure("place order failed: \(placed.status) \(placed.body)")
        }
        return id
    }

    // MARK: Database checks

    func orderStatus(_ orderId: UUID) async throws -> (status: String, reason: String?) {
        let row = try await db.query("SELECT status, cancellation_reason FROM orders WHERE id = $1", [orderId])[0]
        return (try row.decode(String.self, "status"), try row.decode(String?.self, "cancellation_reason"))
    }

    /// Waits until the order is CONFIRMED or CANCELLED; returns the final status.
    func awaitTerminal(_ orderId: UUID, timeout: Duration = .seconds(30)) async throws -> (status: String, reason: String?) {
        var last = try await orderStatus(orderId)
        _ = await TestEnvironment.eventually(timeout: timeout) {
            last = (try? await orderStatus(orderId)) ?? last
            return last.status == "CONFIRMED" || last.status == "CANCELLED"
        }
        return last
    }

    func stock(_ productId: UUID) async throws -> Int {
        try await db.query("SELECT stock FROM products WHERE id = $1", [productId])[0].decode(Int.self, "stock")
    }

    func count(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> Int {
        try await db.query(sql, parameters)[0].decode(Int.self, at: 0)
    }
}

/// A UUID from a JSON value, if it is one.
extension Stack {
    /// This process's environment pointed at the stack's database, broker and namespace,
    /// for the real executables a test starts (API, workers, CLI).
    var processEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = "postgres://\(database.user):\(database.password ?? "")@\(database.host):\(database.port)/\(database.database)"
        environment["AMQP_URL"] = "amqp://\(amqp.user):\(amqp.password)@\(amqp.host):\(amqp.port)/%2F"
        environment["EMPORIUM_NAMESPACE"] = names.namespace
        environment["WEBHOOK_SECRETS_KEY"] = Stack.webhookSecretsKey
        return environment
    }
}

func uuid(_ value: Any?) -> UUID? { (value as? String).flatMap { UUID(uuidString: $0) } }

extension Stack {
    /// A stack that runs only the API (its database, broker names and HTTP client), no
    /// workers: for behaviour the workers take no part in (catalog, accounts, validation).
    static func apiOnly(_ options: Options = Options(), _ body: @Sendable (Stack) async throws -> Void) async throws {
        var options = options
        options.inProcessWorkers = false
        try await run(options, body)
    }
}
