// swift-tools-version:6.1
import PackageDescription

let workerExecutables = ["stock", "payment", "order", "notification"].map { "emporium-\($0)-worker" }

// The module graph is drawn in ARCHITECTURE.md ("Layout"). Lower layers never import higher
// ones: Domain has no I/O; stores hold every table's SQL; the API, the workers and the CLI
// are thin entry points over them.
let sourceTargets: [Target] =
    [
        // C clients, as system libraries.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),

        // A dedicated OS thread per connection, so blocking C calls never run on Swift's
        // cooperative pool.
        .target(name: "IOThread"),
        // `Duration` as the numbers C calls, SQL and metrics take; the one conversion helper.
        .target(name: "Units"),
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", "IOThread", "Units", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics")]
        ),
        .target(
            name: "AMQP",
            dependencies: [
                "CRabbitMQ", "IOThread", "Units", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The business rules: order state machine, checkout, money and pricing, payment states,
        // roles, the saga's events and routing table. No I/O.
        .target(name: "Domain", dependencies: ["Units", .product(name: "Crypto", package: "swift-crypto")]),
        // Logging, metrics, tracing, trace context, log keys, cached health checks.
        .target(
            name: "Observability",
            dependencies: [
                "Units", "Domain",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Envelope, topology, outbox (store and relay), inbox, failure routing, worker runner.
        .target(
            name: "Messaging",
            dependencies: [
                "Units", "Postgres", "AMQP", "Domain", "Observability",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Typed reads of the environment and the settings every process shares.
        .target(
            name: "Settings",
            dependencies: ["Domain", "Postgres", "AMQP", "Messaging", .product(name: "Logging", package: "swift-log")]
        ),
        // One store per aggregate: the only SQL for each table.
        .target(
            name: "Store",
            dependencies: ["Units", "Postgres", "Domain", "Observability", .product(name: "Metrics", package: "swift-metrics")]
        ),
        // bcrypt hashing and the password rules.
        .target(
            name: "Credentials",
            dependencies: ["Domain", .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        // What the API and the workers' health servers share over HTTP: problem bodies, JSON
        // responses, readiness and metrics endpoints.
        .target(
            name: "HTTPCommon",
            dependencies: ["Observability", .product(name: "Hummingbird", package: "hummingbird")]
        ),
        // Payment providers: the fake and Stripe (over AsyncHTTPClient), behind one protocol the
        // payment worker and the API's client-confirmed payments call.
        .target(
            name: "Payments",
            dependencies: [
                "Domain", "Messaging", "Postgres", "Store", "Settings", "Units",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Workers",
            dependencies: [
                "Units", "Postgres", "AMQP", "Domain", "Messaging", "Store", "Observability", "HTTPCommon", "Settings", "Payments",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What an operator inspects and repairs from the CLI and from the console alike:
        // dead letters (list, show, replay with its guard, purge) and the status report.
        .target(name: "OperatorTools", dependencies: ["Units", "Postgres", "AMQP", "Domain", "Messaging", "Store"]),
        // The CLI's own logic: migrations, accounts and seed, parked outbox rows, the soak.
        .target(
            name: "Operations",
            dependencies: [
                "Units", "Postgres", "Domain", "AMQP", "Messaging", "Store", "Credentials", "Observability",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The load generator behind `emporium bench`.
        .target(
            name: "Bench",
            dependencies: [
                "Units", "Postgres", "Store", "Domain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(
            name: "API",
            dependencies: [
                "Units", "Postgres", "AMQP", "Domain", "Messaging", "Store", "Observability", "HTTPCommon", "Credentials", "Settings", "Payments",
                // The console's dead-letter and overview pages use the CLI's tools.
                "OperatorTools",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The API contract, served as is (ContractTests hold the server to it), and the
            // console's templates, stylesheet and script.
            resources: [.copy("Resources/openapi.json"), .copy("Resources/console"), .copy("Resources/shop")]
        ),
        .executableTarget(name: "emporium-api", dependencies: ["API", "Observability", "Settings"]),
        .executableTarget(
            name: "emporium",
            dependencies: [
                "Operations", "OperatorTools", "Bench", "Postgres", "Domain", "AMQP", "Messaging", "Store", "Observability", "Payments", "Settings",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ] + workerExecutables.map { .executableTarget(name: $0, dependencies: ["Workers"]) }

let testTargets: [Target] = [
    .target(
        name: "TestSupport",
        dependencies: ["Postgres", "AMQP", "Operations", .product(name: "Logging", package: "swift-log")],
        path: "Tests/TestSupport"
    ),
    .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
    .testTarget(name: "AMQPTests", dependencies: ["AMQP", "TestSupport"]),
    .testTarget(name: "DomainTests", dependencies: ["Domain"]),
    .testTarget(name: "MessagingTests", dependencies: ["Messaging", "AMQP", "Domain", "Observability"]),
    .testTarget(name: "ObservabilityTests", dependencies: ["Observability", .product(name: "Logging", package: "swift-log")]),
    .testTarget(name: "OperationsTests", dependencies: ["Operations", "Postgres", "Store", "TestSupport"]),
    // The handlers against a migrated database, without a broker.
    .testTarget(name: "WorkersTests", dependencies: ["Workers", "Payments", "Messaging", "Store", "Domain", "Postgres", "TestSupport"]),
    .testTarget(
        name: "APITests",
        dependencies: [
            "API", "Settings", "Domain", "Store", "Credentials", "TestSupport", "Postgres", "OperatorTools", "Payments",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]
    ),
    .testTarget(
        name: "IntegrationTests",
        dependencies: [
            "API", "Workers", "Payments", "Messaging", "Operations", "OperatorTools", "TestSupport", "Postgres", "AMQP", "Domain", "Store", "Observability",
            "Settings",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]
    ),
]

let package = Package(
    name: "Emporium",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "emporium-api", targets: ["emporium-api"]),
        .executable(name: "emporium", targets: ["emporium"]),
        .library(name: "Postgres", targets: ["Postgres"]),
        .library(name: "AMQP", targets: ["AMQP"]),
    ] + workerExecutables.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
        // OTLP over HTTP only: the gRPC exporter would add minutes to every build.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: sourceTargets + testTargets,
    swiftLanguageModes: [.v6]
)

// Every target: `any` is spelled out wherever an existential is meant.
for target in package.targets where target.type != .system {
    var settings: [SwiftSetting] = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
