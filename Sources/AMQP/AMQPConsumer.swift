import CRabbitMQ
import Foundation
import Logging
import Metrics
import Synchronization
import Units

#if canImport(Glibc)
    import Glibc
#endif

/// Consumes one queue with manual acknowledgement on its own connection and thread.
///
/// Deliveries arrive on ``deliveries``; at most `prefetch` are unacknowledged at once. The
/// consumer reconnects with backoff after the connection breaks, declares its topology again
/// and resumes; messages that were not acked before the break are redelivered by the broker,
/// and acking them through the old connection throws `connectionLost` instead of silently
/// doing nothing.
public final class AMQPConsumer: Sendable {
    /// Tuning knobs.
    public struct Options: Sendable {
        /// Most unacknowledged deliveries at once.
        public var prefetch: UInt16 = 32
        /// Declared on every (re)connect, before consuming.
        public var topology = AMQPTopology()
        /// Consumer tag prefix shown by the broker.
        public var consumerTag = "emporium"
        /// First reconnect delay; doubles up to `maxReconnectDelay`.
        public var reconnectDelay: Duration = .milliseconds(100)
        /// Longest reconnect delay.
        public var maxReconnectDelay: Duration = .seconds(5)
        /// After each (re)subscription, take one message at a time until the first delivery
        /// that is not a redelivery, then `prefetch` at once. A quorum queue counts a return
        /// against its delivery limit for every message unacknowledged when a consumer dies,
        /// so a message that crashed the previous consumer must meet the next one alone, or
        /// the healthy messages buffered with it are counted (and dead-lettered) with it.
        /// Quorum queues hand returned messages out before fresh ones, so the returns pass
        /// one by one and the first fresh message ends the probation.
        public var redeliveriesOneAtATime = true
        /// Creates the defaults.
        public init() {}
    }

    /// The deliveries, in the order the broker sent them. Finishes after ``stop()``.
    public let deliveries: AsyncStream<AMQPDelivery>
    private let core: ConsumerCore

    /// Starts consuming `queue` in the background; connection failures are retried, not thrown.
    public init(configuration: AMQPConfiguration, queue: String, options: Options = .init(), logger: Logger = Logger(label: "emporium.amqp.consumer")) {
        let (stream, continuation) = AsyncStream.makeStream(of: AMQPDelivery.self)
        self.deliveries = stream
        self.core = ConsumerCore(configuration: configuration, queue: queue, options: options, logger: logger, output: continuation)
        let core = self.core
        let thread = Thread { core.run() }
        thread.name = "amqp-consumer-\(queue)"
        thread.start()
    }

    deinit { core.enqueue(.stop(nil)) }

    /// Acknowledges a delivery: the broker forgets it.
    public func ack(_ delivery: AMQPDelivery) async throws {
        try await perform { .ack([delivery], $0) }
    }

    /// Acknowledges several deliveries with one wake-up of the consumer's thread (a batch
    /// committed together). They need not be contiguous: each is acked by its own tag.
    public func ack(_ deliveries: [AMQPDelivery]) async throws {
        guard !deliveries.isEmpty else { return }
        try await perform { .ack(deliveries, $0) }
    }

    /// Negatively acknowledges a delivery; `requeue` puts it back (with the redelivered
    /// flag), otherwise it is dead-lettered or dropped.
    public func nack(_ delivery: AMQPDelivery, requeue: Bool) async throws {
        try await perform { .nack(delivery, requeue, $0) }
    }

    /// Rejects a delivery, like ``nack(_:requeue:)`` for one message.
    public func reject(_ delivery: AMQPDelivery, requeue: Bool) async throws {
        try await perform { .reject(delivery, requeue, $0) }
    }

    /// Stops new deliveries (`basic.cancel`) but keeps the connection, so deliveries already
    /// received can still be processed and acked (a graceful drain). ``deliveries`` finishes
    /// once the ones already received are handed out. Call ``stop()`` afterwards.
    public func cancel() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            core.enqueue(.cancel(continuation))
        }
    }

    /// Stops consuming and closes the connection; unacknowledged deliveries go back to the
    /// queue. The ``deliveries`` stream finishes.
    public func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            core.enqueue(.stop(continuation))
        }
    }

    /// Whether the consumer is currently subscribed.
    public var isConnected: Bool { core.shared.withLock { $0.connected } }
    /// How many times the consumer reconnected after a broken connection.
    public var reconnects: Int { core.shared.withLock { $0.reconnects } }
    /// The live connection's number (1 for the first, then one more per reconnect), or nil
    /// while the consumer is not subscribed. Read in one step with ``isConnected``, so a
    /// caller that sees the same number twice knows no delivery was lost in between to a
    /// reconnect (an exclusive queue does not outlive its connection).
    public var connection: Int? { core.shared.withLock { $0.connected ? $0.connections : nil } }

    private func perform(_ make: (CheckedContinuation<Void, any Error>) -> ConsumerCore.Operation) async throws {
        try await withCheckedThrowingContinuation { continuation in
            core.enqueue(make(continuation))
        }
    }
}

/// The consumer's loop and state. `shared` is guarded; everything else is touched only by
/// the consumer's thread.
private final class ConsumerCore: @unchecked Sendable {
    enum Operation {
        case ack([AMQPDelivery], CheckedContinuation<Void, any Error>)
        case nack(AMQPDelivery, Bool, CheckedContinuation<Void, any Error>)
        case reject(AMQPDelivery, Bool, CheckedContinuation<Void, any Error>)
        case stop(CheckedContinuation<Void, Never>?)
        case cancel(CheckedContinuation<Void, Never>)
    }

    struct Shared {
        var operations: [Operation] = []
        var stopped = false
        var connected = false
        var reconnects = 0
        /// Connections made so far; raised together with `connected`.
        var connections = 0
    }

    let configuration: AMQPConfiguration
    let queue: String
    let options: AMQPConsumer.Options
    let logger: Logger
    let output: AsyncStream<AMQPDelivery>.Continuation
    let shared = Mutex(Shared())
    /// A self-pipe: writing a byte wakes the thread from `poll`.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private var session: AMQPSession?
    private var generation = 0
    /// The live channel's deliveries not yet settled, so a batch's acks go out in one frame.
    private var unsettled = UnsettledTags()
    private let ackFrames = Counter(label: "amqp_ack_frames_total")
    private var consumerTag = ""
    /// Consuming with prefetch 1 until a delivery that is not a redelivery arrives (see
    /// ``AMQPConsumer/Options/redeliveriesOneAtATime``).
    private var onProbation = false
    /// After ``AMQPConsumer/cancel()``: no resubscribing, and the stream ends when drained.
    private var cancelled = false
    private var finished = false

    init(configuration: AMQPConfiguration, queue: String, options: AMQPConsumer.Options, logger: Logger, output: AsyncStream<AMQPDelivery>.Continuation) {
        self.configuration = configuration
        self.queue = queue
        self.options = options
        self.logger = logger
        self.output = output
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        } else {
            // Out of file descriptors: no wake-up pipe, so the loop polls briefly instead.
            logger.warning("amqp consumer has no wake-up pipe; acks wait for a short poll", metadata: ["errno": "\(errno)"])
            fds = [-1, -1]
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    func enqueue(_ operation: Operation) {
        let accepted = shared.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.operations.append(operation)
            return true
        }
        guard accepted else {
            switch operation {
            case .ack(_, let c), .nack(_, _, let c), .reject(_, _, let c):
                c.resume(throwing: AMQPError(code: .stopped, message: "the consumer has stopped"))
            case .stop(let c):
                c?.resume()
            case .cancel(let c):
                c.resume()
            }
            return
        }
        var byte: UInt8 = 1
        if wakeWrite >= 0 { _ = write(wakeWrite, &byte, 1) }
    }

    func run() {
        var delay = options.reconnectDelay
        var everConnected = false
        // A long outage is one warning, then debug lines, not one warning per attempt.
        var failedAttempts = 0
        while true {
            if handleOperations() { return }
            if session == nil && cancelled {
                // Cancelled and the connection is gone: nothing more can arrive or be acked.
                finishOutput()
                waitForWake(timeoutMS: 1000)
                continue
            }
            if session == nil {
                do {
                    try subscribe()
                    if everConnected {
                        shared.withLock { $0.reconnects += 1 }
                        Counter(label: "amqp_reconnects_total", dimensions: [("client", "consumer")]).increment()
                        logger.info("amqp consumer reconnected", metadata: ["amqp.queue": "\(queue)"])
                    }
                    everConnected = true
                    delay = options.reconnectDelay
                    failedAttempts = 0
                } catch {
                    failedAttempts += 1
                    let metadata: Logger.Metadata = ["amqp.queue": "\(queue)", "error": "\(error)", "retry_in": "\(delay)", "attempts": "\(failedAttempts)"]
                    if failedAttempts == 1 {
                        logger.warning("amqp consumer cannot subscribe; retrying quietly until it can", metadata: metadata)
                    } else {
                        logger.debug("amqp consumer still cannot subscribe", metadata: metadata)
                    }
                    waitForWake(timeoutMS: Int32(delay.wholeMilliseconds))
                    delay = min(delay * 2, options.maxReconnectDelay)
                    continue
                }
            }
            guard let session else { continue }
            if amqp_data_in_buffer(session.state) == 0 && amqp_frames_enqueued(session.state) == 0 {
                waitForWake(timeoutMS: 1000, socket: session.socketDescriptor)
            }
            readDeliveries(session)
        }
    }

    private func subscribe() throws {
        let session = try AMQPSession(configuration: configuration)
        do {
            try session.declare(options.topology)
            onProbation = options.redeliveriesOneAtATime && options.prefetch > 1
            try session.qos(prefetch: onProbation ? 1 : options.prefetch)
            consumerTag = "\(options.consumerTag)-\(UUID().uuidString.prefix(8))"
            try session.consume(queue: queue, consumerTag: consumerTag)
        } catch {
            session.close()
            throw error
        }
        self.session = session
        generation += 1
        unsettled.reset()
        shared.withLock {
            $0.connected = true
            $0.connections += 1
        }
    }

    private func dropSession(_ error: any Error) {
        logger.warning("amqp consumer lost its connection", metadata: ["amqp.queue": "\(queue)", "error": "\(error)"])
        session?.close()
        session = nil
        shared.withLock { $0.connected = false }
    }

    /// Runs queued acks, nacks and rejects; returns true when asked to stop.
    private func handleOperations() -> Bool {
        let operations = shared.withLock { state -> [Operation] in
            defer { state.operations.removeAll() }
            return state.operations
        }
        // Acks queued meanwhile (a worker's concurrent batches) go out together, in order,
        // before the next operation of another kind.
        var acks: [AMQPDelivery] = []
        var acked: [CheckedContinuation<Void, any Error>] = []
        func sendAcks() {
            guard !acked.isEmpty else { return }
            settle(acks, acked) { session in try acknowledge(acks, on: session) }
            acks.removeAll()
            acked.removeAll()
        }
        for (index, operation) in operations.enumerated() {
            if case .ack(let deliveries, let continuation) = operation, deliveries.allSatisfy({ $0.generation == generation }) {
                acks += deliveries
                acked.append(continuation)
                continue
            }
            sendAcks()
            switch operation {
            case .ack(let deliveries, let continuation):
                // Those of the live connection are acked even if others came on one that has
                // since closed (the broker redelivers those; left unacked, these would hang).
                let live = deliveries.filter { $0.generation == generation }
                let stale = deliveries.filter { $0.generation != generation }
                if let session, !live.isEmpty {
                    do { try acknowledge(live, on: session) } catch { dropSession(error) }
                }
                settle(stale, [continuation]) { _ in }
            case .nack(let delivery, let requeue, let continuation):
                settle([delivery], [continuation]) { session in
                    unsettled.settledSingly(delivery.deliveryTag)
                    try session.nack(delivery.deliveryTag, requeue: requeue)
                }
            case .reject(let delivery, let requeue, let continuation):
                settle([delivery], [continuation]) { session in
                    unsettled.settledSingly(delivery.deliveryTag)
                    try session.reject(delivery.deliveryTag, requeue: requeue)
                }
            case .stop(let continuation):
                // Whatever came after the stop, in this batch or queued since, is answered
                // too: a second stop() or a late ack must not wait forever.
                let pending =
                    operations[(index + 1)...]
                    + shared.withLock { state -> [Operation] in
                        state.stopped = true
                        defer { state.operations.removeAll() }
                        return state.operations
                    }
                session?.close()
                session = nil
                shared.withLock { $0.connected = false }
                finishOutput()
                for operation in pending {
                    if case .ack(_, let c) = operation { c.resume(throwing: AMQPError(code: .stopped, message: "the consumer has stopped")) }
                    if case .nack(_, _, let c) = operation { c.resume(throwing: AMQPError(code: .stopped, message: "the consumer has stopped")) }
                    if case .reject(_, _, let c) = operation { c.resume(throwing: AMQPError(code: .stopped, message: "the consumer has stopped")) }
                    if case .stop(let c) = operation { c?.resume() }
                    if case .cancel(let c) = operation { c.resume() }
                }
                continuation?.resume()
                return true
            case .cancel(let continuation):
                if !cancelled, let session {
                    do { try session.cancel(consumerTag: consumerTag) } catch { dropSession(error) }
                }
                cancelled = true
                continuation.resume()
            }
        }
        sendAcks()
        return false
    }

    /// Acks deliveries of the live channel: one `multiple` frame for the run that begins at
    /// the oldest unsettled delivery, one frame for each of the others.
    private func acknowledge(_ deliveries: [AMQPDelivery], on session: AMQPSession) throws {
        let plan = unsettled.planAcks(deliveries.map(\.deliveryTag))
        if let last = plan.multipleUpTo { try session.ack(last, multiple: true) }
        for tag in plan.singly { try session.ack(tag) }
        ackFrames.increment(by: (plan.multipleUpTo == nil ? 0 : 1) + plan.singly.count)
    }

    /// Runs `body` (the frames that settle `deliveries`) on the live session and answers
    /// every caller waiting for them.
    private func settle(_ deliveries: [AMQPDelivery], _ continuations: [CheckedContinuation<Void, any Error>], _ body: (AMQPSession) throws -> Void) {
        guard let session, deliveries.allSatisfy({ $0.generation == generation }) else {
            let tags = deliveries.map { String($0.deliveryTag) }.joined(separator: ", ")
            let error = AMQPError(
                code: .connectionLost,
                message: "delivery \(tags) came on a connection that has since closed; the broker redelivers it")
            for continuation in continuations { continuation.resume(throwing: error) }
            return
        }
        do {
            try body(session)
            for continuation in continuations { continuation.resume() }
        } catch {
            dropSession(error)
            for continuation in continuations { continuation.resume(throwing: error) }
        }
    }

    private func finishOutput() {
        guard !finished else { return }
        finished = true
        output.finish()
    }

    private func waitForWake(timeoutMS: Int32, socket: Int32 = -1) {
        var fds: [pollfd] = []
        if wakeRead >= 0 { fds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)) }
        if socket >= 0 { fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0)) }
        // Without a wake-up pipe, queued acks are noticed within 10 ms instead of at once.
        _ = poll(&fds, nfds_t(fds.count), wakeRead >= 0 ? timeoutMS : min(timeoutMS, 10))
        guard wakeRead >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
    }

    /// Reads every complete delivery available now; services heartbeats on the way.
    private func readDeliveries(_ session: AMQPSession) {
        repeat {
            amqp_maybe_release_buffers(session.state)
            var envelope = amqp_envelope_t()
            var zero = timeval(tv_sec: 0, tv_usec: 0)
            let reply = amqp_consume_message(session.state, &envelope, &zero, 0)
            if reply.reply_type == AMQP_RESPONSE_NORMAL {
                let delivery = AMQPDelivery(
                    deliveryTag: envelope.delivery_tag, redelivered: envelope.redelivered != 0,
                    exchange: string(envelope.exchange), routingKey: string(envelope.routing_key),
                    body: byteArray(envelope.message.body), properties: decodeProperties(envelope.message.properties),
                    generation: generation)
                amqp_destroy_envelope(&envelope)
                unsettled.received(delivery.deliveryTag)
                output.yield(delivery)
                if onProbation && !delivery.redelivered && !cancelled { endProbation(session) }
                if self.session == nil { return }
                continue
            }
            if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
                if reply.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                    // Cancelled and nothing left buffered: every delivery has been handed out.
                    if cancelled { finishOutput() }
                    return
                }
                if reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue {
                    handleOtherFrame(session)
                    if self.session == nil { return }
                    continue
                }
            }
            dropSession(AMQPStatus.error(status: reply.library_error, "consuming \(queue)"))
            return
        } while amqp_data_in_buffer(session.state) != 0 || amqp_frames_enqueued(session.state) != 0
    }

    /// The returned messages have passed one at a time: resubscribe with the full prefetch.
    /// RabbitMQ fixes a consumer's prefetch when it subscribes, so this cancels the probation
    /// subscription and starts another on the same channel; deliveries still unacknowledged
    /// stay valid (their tags belong to the channel), and any that arrive meanwhile are kept.
    private func endProbation(_ session: AMQPSession) {
        onProbation = false
        do {
            try session.cancel(consumerTag: consumerTag)
            try session.qos(prefetch: options.prefetch)
            consumerTag = "\(options.consumerTag)-\(UUID().uuidString.prefix(8))"
            try session.consume(queue: queue, consumerTag: consumerTag)
        } catch {
            dropSession(error)
        }
    }

    /// A frame other than a delivery: the broker closing the channel or connection, or
    /// cancelling the subscription (its queue was deleted).
    private func handleOtherFrame(_ session: AMQPSession) {
        var frame = amqp_frame_t()
        let status = amqp_simple_wait_frame(session.state, &frame)
        guard status == AMQP_STATUS_OK.rawValue else {
            dropSession(AMQPStatus.error(status: status, "consuming \(queue)"))
            return
        }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return }
        if session.noteBlocking(frame) { return }
        let method = frame.payload.method
        switch method.id {
        case AMQPMethod.channelClose, AMQPMethod.connectionClose:
            let error = AMQPStatus.serverError(method: method.id, decoded: method.decoded, "consuming \(queue)")
            session.markClosed(replyToServerClose: method.id == AMQPMethod.connectionClose)
            dropSession(error)
        case AMQPMethod.basicCancel:
            dropSession(AMQPError(code: .channelClosed, message: "the broker cancelled the subscription to \(queue)"))
        default:
            break
        }
    }
}
