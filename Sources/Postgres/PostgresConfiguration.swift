import Foundation
import Units

/// How to reach PostgreSQL and how each connection behaves.
public struct PostgresConfiguration: Sendable {
    /// Server host name or address, or (an absolute path) the directory of its Unix-domain socket.
    public var host: String
    /// Server port.
    public var port: Int
    /// Role to log in as.
    public var user: String
    /// Password; never logged.
    public var password: String?
    /// Database name.
    public var database: String
    /// How long opening a connection (TCP, TLS negotiation, authentication) may take before
    /// it fails with `timeout`; polled with millisecond precision.
    public var connectTimeout: Duration = .seconds(5)
    /// Server-side `statement_timeout` set on every connection; `nil` leaves the server's.
    public var statementTimeout: Duration? = .seconds(30)
    /// Client-side deadline of each statement: past it the statement is cancelled, the
    /// session dropped and `timeout` thrown, so a frozen server cannot hang a caller. `nil`
    /// waits as long as the server takes (only for tools that must wait, like migrations).
    public var queryTimeout: Duration? = .seconds(35)
    /// TCP keepalive: idle time before the first probe, the interval between probes and how
    /// many unanswered probes close the connection, so a peer that vanished (a partition, a
    /// dead host) is noticed on idle pooled connections too.
    public var keepalive: (idle: Duration, interval: Duration, count: Int) = (.seconds(10), .seconds(5), 3)
    /// How long sent data may stay unacknowledged by the peer's TCP stack before the
    /// connection is closed (`tcp_user_timeout`).
    public var tcpUserTimeout: Duration = .seconds(20)
    /// Reported in `pg_stat_activity.application_name` (and the server's `%a` log prefix), so
    /// an operator sees which process and which of its pools holds a session or a lock.
    /// Each server process names its pools (``named(_:)``); the CLI keeps this default.
    public var applicationName: String = "emporium"

    /// Creates a configuration from its parts.
    public init(host: String, port: Int = 5432, user: String, password: String?, database: String) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses `postgres://user:password@host:port/database` (also `postgresql://`).
    /// Percent-escapes in the user, password and database are decoded.
    ///
    /// A `host` query parameter names the server instead, as libpq reads it; an absolute path
    /// there is the directory of a Unix-domain socket on this machine
    /// (`postgres://user:password@/database?host=/run/postgresql`, the port naming the socket
    /// file). Where the database is local that spares both sides the TCP stack on every round
    /// trip. Any other query parameter is refused rather than silently ignored.
    public init(url string: String) throws {
        guard let components = URLComponents(string: string),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw PostgresError(
                code: .invalidConfiguration,
                message: "DATABASE_URL must look like postgres://user:password@host:port/database")
        }
        let parameters = components.queryItems ?? []
        if let unknown = parameters.first(where: { $0.name != "host" }) {
            throw PostgresError(
                code: .invalidConfiguration,
                message: "DATABASE_URL: unsupported parameter '\(unknown.name)' (only host=/socket/directory is read)")
        }
        let socketHost = parameters.first?.value
        guard let host = socketHost ?? components.host, !host.isEmpty else {
            throw PostgresError(
                code: .invalidConfiguration,
                message: "DATABASE_URL must look like postgres://user:password@host:port/database (or name a socket directory: ?host=/run/postgresql)")
        }
        let database = String(components.percentEncodedPath.dropFirst()).removingPercentEncoding ?? ""
        guard !database.isEmpty, let user = components.user, !user.isEmpty else {
            throw PostgresError(
                code: .invalidConfiguration, message: "DATABASE_URL must name a user and a database")
        }
        self.init(
            host: host, port: components.port ?? 5432, user: user,
            password: components.password, database: database)
    }

    /// The server is reached through a Unix-domain socket in the directory ``host`` names.
    public var usesUnixSocket: Bool { host.hasPrefix("/") }

    /// Reads `DATABASE_URL` (default `postgres://emporium:emporium@127.0.0.1:5432/emporium`),
    /// `DB_CONNECT_TIMEOUT_MS` (default 5000), `DB_STATEMENT_TIMEOUT_MS` (server side, default
    /// 30000; 0 disables) and `DB_QUERY_TIMEOUT_MS` (client side, default `defaultQueryTimeout`:
    /// each process picks its own budget, short for the API, longer for workers).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment,
        defaultQueryTimeout: Duration = .seconds(35)
    ) throws -> PostgresConfiguration {
        var config = try PostgresConfiguration(
            url: environment["DATABASE_URL"] ?? "postgres://emporium:emporium@127.0.0.1:5432/emporium")
        if let ms = environment["DB_CONNECT_TIMEOUT_MS"].flatMap(Int.init) {
            config.connectTimeout = .milliseconds(ms)
        }
        if let ms = environment["DB_STATEMENT_TIMEOUT_MS"].flatMap(Int.init) {
            config.statementTimeout = ms > 0 ? .milliseconds(ms) : nil
        }
        config.queryTimeout = defaultQueryTimeout
        if let value = environment["DB_QUERY_TIMEOUT_MS"] {
            guard let ms = Int(value), ms > 0 else {
                throw PostgresError(code: .invalidConfiguration, message: "DB_QUERY_TIMEOUT_MS must be a positive number of milliseconds")
            }
            config.queryTimeout = .milliseconds(ms)
        }
        return config
    }

    /// The same server, with sessions reported as `applicationName` (`emporium-api`,
    /// `emporium-stock-worker marks`). The server keeps the first 63 bytes and shows any
    /// character outside printable ASCII as `?`.
    public func named(_ applicationName: String) -> PostgresConfiguration {
        var copy = self
        copy.applicationName = applicationName
        return copy
    }

    /// The same server with another database (tests create one per test).
    public func with(database: String) -> PostgresConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    /// libpq keyword/value pairs; passed as arrays so no value needs quoting.
    var connectionParameters: [(String, String)] {
        func seconds(_ duration: Duration) -> String { String(max(1, duration.components.seconds)) }
        var options = "-c TimeZone=UTC -c DateStyle=ISO -c client_encoding=UTF8"
        if let statementTimeout {
            options += " -c statement_timeout=\(statementTimeout.wholeMilliseconds)"
        }
        var pairs: [(String, String)] = [
            ("host", host), ("port", String(port)), ("user", user), ("dbname", database),
            ("application_name", applicationName), ("options", options), ("sslmode", "prefer"),
            ("keepalives", "1"), ("keepalives_idle", seconds(keepalive.idle)),
            ("keepalives_interval", seconds(keepalive.interval)), ("keepalives_count", String(keepalive.count)),
            ("tcp_user_timeout", String(tcpUserTimeout.wholeMilliseconds)),
        ]
        if let password { pairs.append(("password", password)) }
        return pairs
    }
}
