import AMQP
import Foundation
import Logging
import Operations
import Postgres
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Shared helpers for tests against the real PostgreSQL and RabbitMQ started by
/// `make services`. Each test works in its own database, queue names or virtual host, so
/// tests run in any order and in parallel.
public enum TestEnvironment {
    /// The repository root (for scripts and sql/).
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// `DATABASE_URL`, or the local default.
    public static func postgres() throws -> PostgresConfiguration {
        try PostgresConfiguration.fromEnvironment()
    }

    /// `AMQP_URL`, or the local default.
    public static func amqp() throws -> AMQPConfiguration {
        try AMQPConfiguration.fromEnvironment()
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now, for a child process's
    /// server, which binds it a moment later.
    ///
    /// A port is free here only until the child binds it, so two children started close
    /// together could be handed the same one. That happened in CI on 2026-12-07: a payment
    /// replica of `ScalingTests` found its health port taken, exited with 2, and another
    /// test's child answered its readiness check in its place. So this process never hands
    /// the same port out twice, and draws it from 16000–24999: below the kernel's ephemeral
    /// range, which every outgoing connection of the run (thousands: PostgreSQL, RabbitMQ,
    /// curl) also draws from, and clear of RabbitMQ's 15672 and 25672.
    public static func freePort() throws -> Int {
        if ephemeralPortsStart() >= 25_000 {
            for _ in 0..<1_000 {
                let port = Int.random(in: 16_000..<25_000)
                guard handedOutPorts.withLock({ $0.insert(port).inserted }) else { continue }
                if let (fd, _) = try? bindLoopback(listening: false, port: port) {
                    close(fd)
                    return port
                }
            }
        }
        let (fd, port) = try bindLoopback(listening: false)
        close(fd)
        return port
    }

    /// Ports ``freePort()`` has handed out in this process.
    private static let handedOutPorts = Mutex<Set<Int>>([])

    /// The first port of the kernel's ephemeral range (`ip_local_port_range`), 32768 if unknown.
    private static func ephemeralPortsStart() -> Int {
        let range = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        return range.flatMap { $0.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } } ?? 32_768
    }

    /// A socket bound to 127.0.0.1 on `port`, or on one the kernel picks when it is 0
    /// (listening when asked): the file descriptor and the port, for a test's stand-in server.
    public static func bindLoopback(listening: Bool = true, port: Int = 0) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && (!listening || listen(fd, 16) == 0) && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestFailure("cannot bind a loopback port: errno \(errno)")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A name no other test uses: `prefix-<8 hex>`.
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Runs `body` with a fresh, empty database, dropped afterwards.
    public static func withTemporaryDatabase<T>(
        _ body: (PostgresConfiguration) async throws -> T
    ) async throws -> T {
        let base = try postgres()
        let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        // A connection per step: a test may restart the server in between.
        func admin(_ sql: String) async throws {
            let connection = try await PostgresConnection.connect(configuration: base)
            defer { Task { await connection.close() } }
            try await connection.query(sql)
        }
        /// Best effort: an autovacuum worker (a superuser backend the test role may not
        /// terminate) can hold the database for a moment, so try again; a leftover test
        /// database is not a test failure.
        func drop() async {
            for attempt in 0..<5 {
                if (try? await admin("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")) != nil { return }
                try? await Task.sleep(for: .milliseconds(200 * (attempt + 1)))
            }
        }
        // Identifiers cannot be bound as parameters; `name` is generated here from hex only.
        try await admin("CREATE DATABASE \(name)")
        do {
            let value = try await body(base.with(database: name))
            await drop()
            return value
        } catch {
            await drop()
            throw error
        }
    }

    /// Runs `body` with a fresh database migrated to the project's schema (`sql/`).
    public static func withMigratedDatabase<T>(_ body: (PostgresConfiguration) async throws -> T) async throws -> T {
        try await withTemporaryDatabase { config in
            var quiet = Logger(label: "test.migrate")
            quiet.logLevel = .warning
            try await Migrator(directory: repositoryRoot.appendingPathComponent("sql"), logger: quiet).migrate(configuration: config)
            return try await body(config)
        }
    }

    /// Runs the local broker's `rabbitmqctl` with `arguments`; returns its output. It waits off
    /// the cooperative pool: each call starts an Erlang VM (half a second of CPU, far more on a
    /// loaded machine), and a blocking wait would take one of the pool's two threads from every
    /// other test in the process.
    @discardableResult
    public static func rabbitmqctl(_ arguments: [String]) async throws -> String {
        let (status, output) = try await run(repositoryRoot.appendingPathComponent("scripts/rabbitmqctl").path, arguments)
        guard status == 0 else { throw TestFailure("rabbitmqctl \(arguments.joined(separator: " ")) failed: \(output)") }
        return output
    }

    /// Runs a program to completion and returns its exit status and combined output, waiting
    /// with `waitpid` on a GCD thread, never on the cooperative pool. (Foundation's
    /// `Process.waitUntilExit` was seen to miss the exit of a script that restarts
    /// PostgreSQL, leaving it a zombie and the test hung.)
    public static func run(_ path: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try runBlocking(path, arguments) })
            }
        }
    }

    static func runBlocking(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("run") + ".log").path
        defer { try? FileManager.default.removeItem(atPath: outputFile) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw TestFailure("cannot run \(path): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, which Swift does not import as macros.
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, output)
    }

    /// Runs `body` in a fresh virtual host the configured user may use, deleted afterwards.
    public static func withTemporaryVirtualHost<T>(_ body: (AMQPConfiguration) async throws -> T) async throws -> T {
        let base = try amqp()
        let vhost = uniqueName("test")
        try await rabbitmqctl(["-q", "add_vhost", vhost])
        do {
            try await rabbitmqctl(["-q", "set_permissions", "-p", vhost, base.user, ".*", ".*", ".*"])
            let value = try await body(base.with(virtualHost: vhost))
            _ = try? await rabbitmqctl(["-q", "delete_vhost", vhost])
            return value
        } catch {
            _ = try? await rabbitmqctl(["-q", "delete_vhost", vhost])
            throw error
        }
    }

    /// Polls `condition` until it holds or `timeout` passes; returns whether it held.
    public static func eventually(
        timeout: Duration = .seconds(20), _ condition: () async throws -> Bool
    ) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }
}

/// A failure in test setup, with a message.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
