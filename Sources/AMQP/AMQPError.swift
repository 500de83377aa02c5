/// An error from the AMQP client or the broker.
///
/// Broker errors carry the AMQP reply code and text (e.g. 404 NOT_FOUND, 406
/// PRECONDITION_FAILED, 403 ACCESS_REFUSED, 320 CONNECTION_FORCED).
public struct AMQPError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable name.
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// `AMQP_URL` or another setting could not be understood.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// The TCP connection or the AMQP handshake failed (refused, timed out).
        public static let connectionFailed = Code("connectionFailed")
        /// The broker refused the credentials or the virtual host.
        public static let accessRefused = Code("accessRefused")
        /// An open connection broke or was closed by the broker.
        public static let connectionLost = Code("connectionLost")
        /// The broker closed the channel because of a failed operation (see reply code).
        public static let channelClosed = Code("channelClosed")
        /// A `mandatory` message could not be routed to any queue and was returned.
        public static let unroutable = Code("unroutable")
        /// The broker negatively acknowledged a published message.
        public static let nacked = Code("nacked")
        /// The broker did not answer in time.
        public static let timeout = Code("timeout")
        /// The consumer or publisher was stopped.
        public static let stopped = Code("stopped")
    }

    /// What kind of failure this is.
    public var code: Code
    /// A human-readable explanation.
    public var message: String
    /// The AMQP reply code, for broker errors.
    public var replyCode: Int?
    /// The broker's reply text, for broker errors.
    public var replyText: String?

    /// Creates an error; usually thrown by this module.
    public init(code: Code, message: String, replyCode: Int? = nil, replyText: String? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.replyText = replyText
    }

    public var description: String {
        var text = "AMQPError(\(code)"
        if let replyCode { text += " \(replyCode)" }
        return text + "): \(message)"
    }

    /// Whether trying again later may succeed (lost or refused connections, timeouts).
    public var isTransient: Bool {
        [.connectionFailed, .connectionLost, .timeout].contains(code)
    }
}
