// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Emporium",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "emporium-api", targets: ["emporium-api"]),
        .executable(name: "emporium", targets: ["emporium"]),
        .library(name: "Postgres", targets: ["Postgres"]),
        .library(name: "AMQP", targets: ["AMQP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C clients, as system libraries.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CRabbitMQ", pkgConfig: "librabbitmq", providers: [.apt(["librabbitmq-dev"])]),

        // A dedicated OS thread per connection, so blocking C calls never run on Swift's
        // cooperative pool.
        .target(name: "IOThread"),
        .target(
            name: "Postgres",
            dependencies: ["CLibPQ", "IOThread", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "AMQP",
            dependencies: ["CRabbitMQ", "IOThread", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Operations",
            dependencies: [
                "Postgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "API",
            dependencies: [
                "Postgres", "AMQP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "emporium-api", dependencies: ["API"]),
        .executableTarget(
            name: "emporium",
            dependencies: [
                "Operations", "Postgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .target(
            name: "TestSupport",
            dependencies: ["Postgres", "AMQP", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(name: "AMQPTests", dependencies: ["AMQP", "TestSupport"]),
        .testTarget(name: "OperationsTests", dependencies: ["Operations", "Postgres", "TestSupport"]),
        .testTarget(
            name: "APITests",
            dependencies: [
                "API", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
