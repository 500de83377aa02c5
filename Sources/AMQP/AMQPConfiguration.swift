import Foundation

/// How to reach RabbitMQ.
public struct AMQPConfiguration: Sendable {
    /// Broker host.
    public var host: String
    /// Broker port.
    public var port: Int
    /// User name.
    public var user: String
    /// Password; never logged.
    public var password: String
    /// Virtual host.
    public var virtualHost: String
    /// Heartbeat interval negotiated with the broker; a silent peer is detected after two.
    public var heartbeat: Duration = .seconds(10)
    /// How long the TCP connect and the AMQP handshake may take.
    public var connectTimeout: Duration = .seconds(5)
    /// How long a synchronous broker operation (declare, bind, purge, …) may take. Creating
    /// a quorum queue on a busy broker can take seconds, so this is well above the connect
    /// timeout.
    public var rpcTimeout: Duration = .seconds(30)
    /// Shown in the management UI as the connection's name.
    public var connectionName: String = "emporium"
    /// How long data sent to the broker may stay unacknowledged by its TCP stack before the
    /// connection is given up (`TCP_USER_TIMEOUT`).
    public var tcpUserTimeout: Duration = .seconds(20)

    /// Creates a configuration from its parts.
    public init(host: String, port: Int = 5672, user: String, password: String, virtualHost: String = "/") {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.virtualHost = virtualHost
    }

    /// Parses `amqp://user:password@host:port/vhost`. An empty path or `%2F` is the default
    /// vhost `/`; percent-escapes are decoded.
    public init(url string: String) throws {
        guard let components = URLComponents(string: string), components.scheme == "amqp",
            let host = components.host, !host.isEmpty
        else {
            throw AMQPError(
                code: .invalidConfiguration, message: "AMQP_URL must look like amqp://user:password@host:port/vhost")
        }
        let path = String(components.percentEncodedPath.dropFirst())
        let vhost = path.isEmpty ? "/" : (path.removingPercentEncoding ?? path)
        self.init(
            host: host, port: components.port ?? 5672,
            user: components.user ?? "guest", password: components.password ?? "guest", virtualHost: vhost)
    }

    /// Reads `AMQP_URL` (default `amqp://emporium:emporium@127.0.0.1:5672/%2F`) and
    /// `AMQP_HEARTBEAT_SECONDS` (default 10).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> AMQPConfiguration {
        var config = try AMQPConfiguration(url: environment["AMQP_URL"] ?? "amqp://emporium:emporium@127.0.0.1:5672/%2F")
        if let seconds = environment["AMQP_HEARTBEAT_SECONDS"].flatMap(Int.init) {
            config.heartbeat = .seconds(seconds)
        }
        return config
    }

    /// The same broker with another virtual host.
    public func with(virtualHost: String) -> AMQPConfiguration {
        var copy = self
        copy.virtualHost = virtualHost
        return copy
    }
}
