import CRabbitMQ
import Foundation
import IOThread
import Logging
import Metrics
import Synchronization
import Units

/// Publishes with publisher confirms on its own connection.
///
/// A batch is sent with up to `confirmWindow` messages awaiting confirmation at once. A call
/// returns only when the broker has confirmed, returned or nacked every message. If the
/// connection breaks, the publisher reconnects with backoff (until `reconnectTimeout`) and
/// sends again whatever was not yet confirmed: delivery is at-least-once, which consumers
/// handle by deduplicating on the message id.
public final class AMQPPublisher: Sendable {
    /// Tuning knobs.
    public struct Options: Sendable {
        /// Most messages awaiting a confirm at once.
        public var confirmWindow = 256
        /// Longest wait for the broker's next confirm before the connection is presumed dead.
        public var confirmTimeout: Duration = .seconds(15)
        /// How long to keep reconnecting before a publish fails.
        public var reconnectTimeout: Duration = .seconds(30)
        /// First reconnect delay; doubles up to one second.
        public var reconnectDelay: Duration = .milliseconds(100)
        /// Declared on every (re)connect.
        public var topology = AMQPTopology()
        /// Creates the defaults.
        public init() {}
    }

    private let thread: IOThread
    private let core: PublisherCore
    private let heartbeat: Task<Void, Never>

    /// Creates a publisher; it connects on first use.
    public init(configuration: AMQPConfiguration, options: Options = .init(), logger: Logger = Logger(label: "emporium.amqp.publisher")) {
        let thread = IOThread(name: "amqp-publisher")
        let core = PublisherCore(configuration: configuration, options: options, logger: logger)
        self.thread = thread
        self.core = core
        // rabbitmq-c sends heartbeats only from inside its calls: keep an idle connection alive.
        let interval = max(configuration.heartbeat / 2, .milliseconds(500))
        self.heartbeat = Task { [weak thread] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let thread else { return }
                thread.submit { core.serviceHeartbeat() }
            }
        }
    }

    deinit {
        heartbeat.cancel()
        let core = self.core
        thread.submit { core.close() }
        thread.shutdown()
    }

    /// Connects now (and declares the topology), so configuration errors surface early.
    public func connect() async throws {
        try await thread.run { [core] in _ = try core.session() }
    }

    /// Publishes `messages` and waits until each is confirmed, returned or nacked. Messages
    /// without a message id get a UUID. Throws only when the broker stayed unreachable for
    /// `reconnectTimeout` or refused the operation (e.g. an unknown exchange).
    public func publish(_ messages: [AMQPOutgoingMessage]) async throws -> [AMQPPublishOutcome] {
        guard !messages.isEmpty else { return [] }
        let start = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - start
            Metrics.Timer(label: "amqp_publish_confirm_seconds").recordNanoseconds(
                elapsed.wholeNanoseconds)
        }
        return try await thread.run { [core] in try core.publishBatch(messages) }
    }

    /// Publishes one message and waits for its confirm. Throws `unroutable` when it was
    /// returned and `nacked` when the broker refused it.
    public func publish(_ message: AMQPOutgoingMessage) async throws {
        switch try await publish([message])[0] {
        case .confirmed:
            return
        case .returned(let code, let text):
            throw AMQPError(
                code: .unroutable,
                message: "message to \(message.exchange) (\(message.routingKey)) reached no queue: \(text)",
                replyCode: code, replyText: text)
        case .nacked:
            throw AMQPError(code: .nacked, message: "the broker refused the message to \(message.exchange) (\(message.routingKey))")
        }
    }

    /// How many times the publisher had to reconnect.
    public var reconnects: Int { core.reconnects.withLock { $0 } }

    /// Why the broker blocks this publisher's connection right now (a memory or disk alarm:
    /// `connection.blocked`), or nil. While blocked, publishes wait for confirms that do not
    /// come and fail after the confirm timeout; committed outbox rows wait for the relay.
    public var blockedReason: String? { core.blocked.withLock { $0 } }

    /// Closes the connection.
    public func close() async {
        heartbeat.cancel()
        _ = try? await thread.run { [core] in core.close() }
        thread.shutdown()
    }
}

/// The publisher's state; touched only on its thread (except the reconnect counter).
private final class PublisherCore: @unchecked Sendable {
    let configuration: AMQPConfiguration
    let options: AMQPPublisher.Options
    let logger: Logger
    var current: AMQPSession?
    var lastTag: UInt64 = 0
    var hadSession = false
    let reconnects = Mutex(0)
    /// The broker's `connection.blocked` reason while it holds, readable from any thread.
    let blocked = Mutex<String?>(nil)
    /// When publishing started failing, until a publish succeeds again.
    var failingSince: ContinuousClock.Instant?

    init(configuration: AMQPConfiguration, options: AMQPPublisher.Options, logger: Logger) {
        self.configuration = configuration
        self.options = options
        self.logger = logger
    }

    func session() throws -> AMQPSession {
        if let current, current.isOpen { return current }
        current?.close()
        current = nil
        let session = try AMQPSession(configuration: configuration)
        try session.confirmSelect()
        try session.declare(options.topology)
        lastTag = 0
        if hadSession {
            reconnects.withLock { $0 += 1 }
            logger.info("amqp publisher reconnected", metadata: ["amqp.host": "\(configuration.host)"])
            Counter(label: "amqp_reconnects_total", dimensions: [("client", "publisher")]).increment()
        }
        hadSession = true
        current = session
        return session
    }

    /// Closes the connection. A block noted before stays noted until a confirm proves it
    /// lifted: an alarm outlives the connection it was reported on.
    func close() {
        current?.close()
        current = nil
    }

    func serviceHeartbeat() {
        guard let current, current.isOpen else { return }
        // A zero wait lets rabbitmq-c send a due heartbeat and notice a dead peer; a blocking
        // notice may be what arrives.
        do {
            current.releaseBuffers()
            if let frame = try current.waitFrame(timeout: .zero) { noteBlocking(frame, on: current) }
        } catch { close() }
    }

    /// Records `connection.blocked` / `connection.unblocked`; true when `frame` was one.
    @discardableResult
    func noteBlocking(_ frame: amqp_frame_t, on session: AMQPSession) -> Bool {
        guard session.noteBlocking(frame) else { return false }
        let reason = session.blockedReason
        blocked.withLock { $0 = reason }
        if let reason {
            logger.warning("the broker blocked the publisher's connection (resource alarm); events wait in the outbox", metadata: ["reason": "\(reason)"])
        } else {
            logger.info("the broker unblocked the publisher's connection")
        }
        return true
    }

    func publishBatch(_ input: [AMQPOutgoingMessage]) throws -> [AMQPPublishOutcome] {
        var messages = input
        for index in messages.indices where messages[index].properties.messageID == nil {
            messages[index].properties.messageID = UUID().uuidString.lowercased()
        }
        var outcomes = [AMQPPublishOutcome?](repeating: nil, count: messages.count)
        var remaining = messages.count
        var toSend = Array(messages.indices.reversed())  // a stack: popLast sends in order
        var inFlight: [UInt64: Int] = [:]
        var returned: [String: AMQPPublishOutcome] = [:]
        let clock = ContinuousClock()
        var deadline = clock.now + options.reconnectTimeout
        var delay = options.reconnectDelay

        func settle(_ tag: UInt64, multiple: Bool, as outcome: AMQPPublishOutcome?) {
            let tags = multiple ? inFlight.keys.filter { $0 <= tag } : [tag]
            for tag in tags {
                guard let index = inFlight.removeValue(forKey: tag) else { continue }
                let id = messages[index].properties.messageID!
                outcomes[index] = outcome ?? returned.removeValue(forKey: id) ?? .confirmed
                remaining -= 1
            }
        }

        while remaining > 0 {
            do {
                let session = try session()
                while inFlight.count < options.confirmWindow, let index = toSend.popLast() {
                    do {
                        try session.publish(messages[index])
                    } catch {
                        toSend.append(index)
                        throw error
                    }
                    lastTag += 1
                    inFlight[lastTag] = index
                }
                // The previous frame is fully read: let rabbitmq-c reuse its memory.
                session.releaseBuffers()
                guard let frame = try session.waitFrame(timeout: options.confirmTimeout) else {
                    session.markClosed()
                    throw AMQPError(code: .timeout, message: "no publisher confirm within \(options.confirmTimeout)")
                }
                guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), !noteBlocking(frame, on: session) else { continue }
                let method = frame.payload.method
                switch method.id {
                case AMQPMethod.basicAck:
                    let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                    settle(ack.delivery_tag, multiple: ack.multiple != 0, as: nil)
                case AMQPMethod.basicNack:
                    let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                    settle(nack.delivery_tag, multiple: nack.multiple != 0, as: .nacked)
                case AMQPMethod.basicReturn:
                    let info = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
                    let code = Int(info.reply_code), text = string(info.reply_text)
                    let content = try session.readContent()
                    if let id = content.properties.messageID { returned[id] = .returned(replyCode: code, replyText: text) }
                case AMQPMethod.channelClose, AMQPMethod.connectionClose:
                    let error = AMQPStatus.serverError(method: method.id, decoded: method.decoded, "publishing")
                    session.markClosed(replyToServerClose: method.id == AMQPMethod.connectionClose)
                    throw error
                default:
                    continue
                }
                delay = options.reconnectDelay
                deadline = clock.now + options.reconnectTimeout
            } catch let error as AMQPError where error.isTransient {
                close()
                // Unconfirmed messages go out again on the next connection, in order.
                toSend.append(contentsOf: inFlight.sorted { $0.key > $1.key }.map(\.value))
                inFlight.removeAll()
                guard clock.now < deadline else { throw error }
                // One warning per outage; the attempts after it at debug.
                if failingSince == nil {
                    failingSince = clock.now
                    logger.warning("amqp publish failed; reconnecting", metadata: ["error": "\(error)"])
                } else {
                    logger.debug("amqp publish still failing; reconnecting", metadata: ["error": "\(error)"])
                }
                Thread.sleep(forTimeInterval: delay.secondsWithFraction)
                delay = min(delay * 2, .seconds(1))
            } catch {
                close()
                throw error
            }
        }
        current?.releaseBuffers()
        // Confirms arrived: whatever blocked the publisher has lifted.
        if outcomes.contains(where: { $0 == .confirmed }) { blocked.withLock { $0 = nil } }
        if failingSince != nil {
            failingSince = nil
            logger.info("amqp publishing works again")
        }
        return outcomes.map { $0! }
    }
}
