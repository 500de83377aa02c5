import CRabbitMQ
import Foundation
import Units

// AMQP method ids and property flags. rabbitmq-c defines them as cast macros, which Swift
// does not import.
enum AMQPMethod {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let connectionCloseOK: amqp_method_number_t = 0x000A_0033
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOK: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicGetOK: amqp_method_number_t = 0x003C_0047
    static let basicGetEmpty: amqp_method_number_t = 0x003C_0048
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

private enum PropertyFlag {
    static let contentType: amqp_flags_t = 1 << 15
    static let headers: amqp_flags_t = 1 << 13
    static let deliveryMode: amqp_flags_t = 1 << 12
    static let correlationID: amqp_flags_t = 1 << 10
    static let replyTo: amqp_flags_t = 1 << 9
    static let expiration: amqp_flags_t = 1 << 8
    static let messageID: amqp_flags_t = 1 << 7
    static let timestamp: amqp_flags_t = 1 << 6
    static let type: amqp_flags_t = 1 << 5
    static let appID: amqp_flags_t = 1 << 3
}

/// Memory for C structures built from Swift values; freed when the arena is.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []
    deinit { for allocation in allocations { free(allocation) } }

    func bytes(_ string: String) -> amqp_bytes_t { bytes(Array(string.utf8)) }

    func bytes(_ data: [UInt8]) -> amqp_bytes_t {
        guard !data.isEmpty else { return emporium_amqp_bytes(nil, 0) }
        let pointer = malloc(data.count)!
        allocations.append(pointer)
        data.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        return emporium_amqp_bytes(pointer, data.count)
    }

    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(amqp_table_entry_t.self, count: table.count)
        for (index, (key, value)) in table.sorted(by: { $0.key < $1.key }).enumerated() {
            entries[index] = amqp_table_entry_t(key: bytes(key), value: field(value))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    private func field(_ value: AMQPValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .string(let string):
            field.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
            field.value.bytes = bytes(string)
        case .int(let int):
            field.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
            field.value.i64 = int
        case .bool(let bool):
            field.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
            field.value.boolean = bool ? 1 : 0
        case .double(let double):
            field.kind = UInt8(AMQP_FIELD_KIND_F64.rawValue)
            field.value.f64 = double
        case .array(let values):
            field.kind = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
            let entries = allocate(amqp_field_value_t.self, count: max(values.count, 1))
            for (index, item) in values.enumerated() { entries[index] = self.field(item) }
            field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: entries)
        case .table(let nested):
            field.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
            field.value.table = table(nested)
        case .void:
            field.kind = UInt8(AMQP_FIELD_KIND_VOID.rawValue)
        }
        return field
    }

    private func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(count, MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    func properties(_ properties: AMQPProperties) -> amqp_basic_properties_t {
        var props = amqp_basic_properties_t()
        var flags: amqp_flags_t = PropertyFlag.deliveryMode
        props.delivery_mode = properties.persistent ? 2 : 1
        if let value = properties.messageID {
            flags |= PropertyFlag.messageID
            props.message_id = bytes(value)
        }
        if let value = properties.contentType {
            flags |= PropertyFlag.contentType
            props.content_type = bytes(value)
        }
        if let value = properties.type {
            flags |= PropertyFlag.type
            props.type = bytes(value)
        }
        if let value = properties.correlationID {
            flags |= PropertyFlag.correlationID
            props.correlation_id = bytes(value)
        }
        if let value = properties.expiration {
            flags |= PropertyFlag.expiration
            props.expiration = bytes(value)
        }
        if let value = properties.appID {
            flags |= PropertyFlag.appID
            props.app_id = bytes(value)
        }
        if let value = properties.replyTo {
            flags |= PropertyFlag.replyTo
            props.reply_to = bytes(value)
        }
        if let value = properties.timestamp {
            flags |= PropertyFlag.timestamp
            props.timestamp = UInt64(max(0, value.timeIntervalSince1970))
        }
        if !properties.headers.isEmpty {
            flags |= PropertyFlag.headers
            props.headers = table(properties.headers)
        }
        props._flags = flags
        return props
    }
}

// MARK: - Decoding C values

func string(_ bytes: amqp_bytes_t) -> String {
    guard bytes.len > 0, let pointer = bytes.bytes else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: bytes.len), as: UTF8.self)
}

func byteArray(_ bytes: amqp_bytes_t) -> [UInt8] {
    guard bytes.len > 0, let pointer = bytes.bytes else { return [] }
    return Array(UnsafeRawBufferPointer(start: pointer, count: bytes.len))
}

func decodeTable(_ table: amqp_table_t) -> AMQPTable {
    var result: AMQPTable = [:]
    for index in 0..<Int(table.num_entries) {
        let entry = table.entries[index]
        result[string(entry.key)] = decodeField(entry.value)
    }
    return result
}

func decodeField(_ field: amqp_field_value_t) -> AMQPValue {
    switch amqp_field_value_kind_t(UInt32(field.kind)) {
    case AMQP_FIELD_KIND_BOOLEAN: return .bool(field.value.boolean != 0)
    case AMQP_FIELD_KIND_I8: return .int(Int64(field.value.i8))
    case AMQP_FIELD_KIND_U8: return .int(Int64(field.value.u8))
    case AMQP_FIELD_KIND_I16: return .int(Int64(field.value.i16))
    case AMQP_FIELD_KIND_U16: return .int(Int64(field.value.u16))
    case AMQP_FIELD_KIND_I32: return .int(Int64(field.value.i32))
    case AMQP_FIELD_KIND_U32: return .int(Int64(field.value.u32))
    case AMQP_FIELD_KIND_I64: return .int(field.value.i64)
    case AMQP_FIELD_KIND_U64: return .int(Int64(bitPattern: field.value.u64))
    case AMQP_FIELD_KIND_TIMESTAMP: return .int(Int64(bitPattern: field.value.u64))
    case AMQP_FIELD_KIND_F32: return .double(Double(field.value.f32))
    case AMQP_FIELD_KIND_F64: return .double(field.value.f64)
    case AMQP_FIELD_KIND_UTF8, AMQP_FIELD_KIND_BYTES: return .string(string(field.value.bytes))
    case AMQP_FIELD_KIND_ARRAY:
        let array = field.value.array
        return .array((0..<Int(array.num_entries)).map { decodeField(array.entries[$0]) })
    case AMQP_FIELD_KIND_TABLE: return .table(decodeTable(field.value.table))
    default: return .void
    }
}

func decodeProperties(_ props: amqp_basic_properties_t) -> AMQPProperties {
    let flags = props._flags
    func has(_ flag: amqp_flags_t) -> Bool { flags & flag != 0 }
    return AMQPProperties(
        messageID: has(PropertyFlag.messageID) ? string(props.message_id) : nil,
        contentType: has(PropertyFlag.contentType) ? string(props.content_type) : nil,
        type: has(PropertyFlag.type) ? string(props.type) : nil,
        correlationID: has(PropertyFlag.correlationID) ? string(props.correlation_id) : nil,
        timestamp: has(PropertyFlag.timestamp) ? Date(timeIntervalSince1970: Double(props.timestamp)) : nil,
        headers: has(PropertyFlag.headers) ? decodeTable(props.headers) : [:],
        persistent: has(PropertyFlag.deliveryMode) ? props.delivery_mode == 2 : false,
        expiration: has(PropertyFlag.expiration) ? string(props.expiration) : nil,
        appID: has(PropertyFlag.appID) ? string(props.app_id) : nil,
        replyTo: has(PropertyFlag.replyTo) ? string(props.reply_to) : nil)
}

// MARK: - Status codes to errors

/// The one place rabbitmq-c status codes and RPC replies become ``AMQPError``s.
enum AMQPStatus {
    static func check(_ status: Int32, _ context: String) throws {
        guard status != AMQP_STATUS_OK.rawValue else { return }
        throw error(status: status, context)
    }

    static func error(status: Int32, _ context: String) -> AMQPError {
        let text = String(cString: amqp_error_string2(status))
        let code: AMQPError.Code = status == AMQP_STATUS_TIMEOUT.rawValue ? .timeout : .connectionLost
        return AMQPError(code: code, message: "\(context): \(text)")
    }

    static func check(_ reply: amqp_rpc_reply_t, _ context: String) throws {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw error(status: reply.library_error, context)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            throw serverError(method: reply.reply.id, decoded: reply.reply.decoded, context)
        default:
            throw AMQPError(code: .connectionLost, message: "\(context): no reply from the broker")
        }
    }

    static func serverError(method: amqp_method_number_t, decoded: UnsafeMutableRawPointer?, _ context: String) -> AMQPError {
        if method == AMQPMethod.connectionClose, let decoded {
            let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let text = string(close.reply_text)
            let code: AMQPError.Code = close.reply_code == 403 ? .accessRefused : .connectionLost
            return AMQPError(code: code, message: "\(context): broker closed the connection: \(text)", replyCode: Int(close.reply_code), replyText: text)
        }
        if method == AMQPMethod.channelClose, let decoded {
            let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let text = string(close.reply_text)
            let code: AMQPError.Code = close.reply_code == 403 ? .accessRefused : .channelClosed
            return AMQPError(code: code, message: "\(context): broker closed the channel: \(text)", replyCode: Int(close.reply_code), replyText: text)
        }
        return AMQPError(code: .connectionLost, message: "\(context): unexpected broker method 0x\(String(method, radix: 16))")
    }
}

// MARK: - Session

/// One AMQP connection with one open channel. Not thread-safe: its owner (a connection,
/// publisher or consumer) calls it from a single thread only.
final class AMQPSession {
    let state: amqp_connection_state_t
    private(set) var channel: amqp_channel_t = 1
    private(set) var isOpen = false
    let configuration: AMQPConfiguration

    /// Connects, logs in and opens a channel. Throws `connectionFailed` or `accessRefused`.
    init(configuration: AMQPConfiguration) throws {
        self.configuration = configuration
        guard let state = amqp_new_connection() else {
            throw AMQPError(code: .connectionFailed, message: "rabbitmq-c could not allocate a connection")
        }
        self.state = state
        let peer = "\(configuration.host):\(configuration.port)"
        guard let socket = amqp_tcp_socket_new(state) else {
            close()
            throw AMQPError(code: .connectionFailed, message: "cannot create a socket for \(peer)")
        }
        var timeout = timeval(duration: configuration.connectTimeout)
        let opened = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
        guard opened == AMQP_STATUS_OK.rawValue else {
            close()
            let text = String(cString: amqp_error_string2(opened))
            throw AMQPError(code: .connectionFailed, message: "cannot connect to RabbitMQ at \(peer): \(text)")
        }
        // The handshake is bounded by the same timeout (rabbitmq-c 0.9+).
        amqp_set_handshake_timeout(state, &timeout)
        var rpcTimeout = timeval(duration: configuration.rpcTimeout)
        amqp_set_rpc_timeout(state, &rpcTimeout)
        Self.configureSocket(amqp_get_sockfd(state), userTimeout: configuration.tcpUserTimeout)
        let heartbeat = Int32(configuration.heartbeat.components.seconds)
        // The connection's name (shown by the management UI) and the capability to be told
        // when a resource alarm blocks the connection, instead of finding out by timing out.
        let arena = CArena()
        var properties = arena.table([
            "connection_name": .string(configuration.connectionName),
            "capabilities": .table(["connection.blocked": .bool(true), "consumer_cancel_notify": .bool(true)]),
        ])
        let login = withExtendedLifetime(arena) {
            emporium_amqp_login_plain_properties(
                state, configuration.virtualHost, 0, 131_072, heartbeat, &properties, configuration.user, configuration.password)
        }
        if login.reply_type != AMQP_RESPONSE_NORMAL {
            var error = AMQPError(code: .connectionFailed, message: "login failed")
            if let reported = (Result { try AMQPStatus.check(login, "login") }).failure as? AMQPError { error = reported }
            // RabbitMQ answers bad credentials by closing the socket (a library error here)
            // and an unknown or forbidden vhost with connection.close 530/403.
            if error.code == .connectionLost || error.replyCode == 530 || error.replyCode == 403 {
                error = AMQPError(
                    code: .accessRefused,
                    message:
                        "RabbitMQ at \(peer) refused user \"\(configuration.user)\" on vhost \"\(configuration.virtualHost)\" (wrong credentials, unknown vhost or no permission)",
                    replyCode: error.replyCode ?? 403, replyText: error.replyText)
            }
            close()
            throw error
        }
        isOpen = true
        do {
            try openChannel()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// TCP keepalives and a user timeout on the broker's socket, so a peer that vanished
    /// (a partition, a dead host) is noticed even while nothing is sent, and data the peer
    /// never acknowledges fails the connection instead of waiting forever.
    static func configureSocket(_ fd: Int32, userTimeout: Duration) {
        guard fd >= 0 else { return }
        var on: Int32 = 1, idle: Int32 = 10, interval: Int32 = 5, count: Int32 = 3
        var timeout = UInt32(userTimeout.wholeMilliseconds)
        let size = socklen_t(MemoryLayout<Int32>.size)
        _ = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size)
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &timeout, socklen_t(MemoryLayout<UInt32>.size))
    }

    /// Why the broker blocked this connection (a memory or disk alarm), while it is blocked.
    private(set) var blockedReason: String?

    /// Notes `connection.blocked` / `connection.unblocked`; true when the frame was one of them.
    func noteBlocking(_ frame: amqp_frame_t) -> Bool {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), frame.channel == 0 else { return false }
        switch frame.payload.method.id {
        case AMQPMethod.connectionBlocked:
            let blocked = frame.payload.method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee
            let reason = string(blocked.reason)
            blockedReason = reason.isEmpty ? "blocked by the broker" : reason
            return true
        case AMQPMethod.connectionUnblocked:
            blockedReason = nil
            return true
        default:
            return false
        }
    }

    /// Gives rabbitmq-c's frame memory back once nothing decoded is still in use. Without
    /// it, every frame received (each publisher confirm, each reply) grows the connection's
    /// pools for as long as the connection lives.
    func releaseBuffers() {
        amqp_maybe_release_buffers(state)
    }

    /// Opens the next channel number (after the broker closed the previous one).
    func openChannel() throws {
        channel += 1
        _ = amqp_channel_open(state, channel)
        try rpc("channel.open")
    }

    /// Checks the last RPC; on a channel error, reopens a channel so the session stays usable.
    func rpc(_ context: String) throws {
        let reply = amqp_get_rpc_reply(state)
        do {
            try AMQPStatus.check(reply, context)
        } catch let error as AMQPError {
            if error.code == .channelClosed {
                var ok = amqp_channel_close_ok_t(dummy: 0)
                _ = amqp_send_method(state, channel, AMQPMethod.channelCloseOK, &ok)
                try? openChannel()
            } else if error.code == .connectionLost || error.code == .accessRefused || error.code == .timeout {
                // After a timed-out call the reply may still come and confuse the next one:
                // the session is given up and the next call opens a fresh one.
                markClosed(replyToServerClose: reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
            }
            throw error
        }
    }

    func markClosed(replyToServerClose: Bool = false) {
        if replyToServerClose {
            var ok = amqp_connection_close_ok_t(dummy: 0)
            _ = amqp_send_method(state, 0, AMQPMethod.connectionCloseOK, &ok)
        }
        isOpen = false
    }

    /// Closes politely if still open, then frees the connection. Idempotent.
    func close() {
        if isOpen {
            _ = amqp_channel_close(state, channel, Int32(AMQP_REPLY_SUCCESS))
            _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
            isOpen = false
        }
        if !destroyed {
            amqp_destroy_connection(state)
            destroyed = true
        }
    }
    private var destroyed = false

    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    // MARK: Topology

    func declareExchange(_ exchange: AMQPExchange) throws {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        _ = amqp_exchange_declare(
            state, channel, arena.bytes(exchange.name), arena.bytes(exchange.type.rawValue), 0,
            exchange.durable ? 1 : 0, exchange.autoDelete ? 1 : 0, exchange.internal ? 1 : 0,
            arena.table(exchange.arguments))
        try rpc("exchange.declare \(exchange.name)")
    }

    @discardableResult
    func declareQueue(_ queue: AMQPQueue, passive: Bool = false) throws -> (messages: Int, consumers: Int) {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        let ok = amqp_queue_declare(
            state, channel, arena.bytes(queue.name), passive ? 1 : 0, queue.durable ? 1 : 0,
            queue.exclusive ? 1 : 0, queue.autoDelete ? 1 : 0, arena.table(queue.arguments))
        try rpc("queue.declare \(queue.name)")
        guard let ok else { return (0, 0) }
        return (Int(ok.pointee.message_count), Int(ok.pointee.consumer_count))
    }

    func bind(_ binding: AMQPBinding) throws {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        _ = amqp_queue_bind(
            state, channel, arena.bytes(binding.queue), arena.bytes(binding.exchange), arena.bytes(binding.routingKey),
            arena.table(binding.arguments))
        try rpc("queue.bind \(binding.queue) to \(binding.exchange) (\(binding.routingKey))")
    }

    func declare(_ topology: AMQPTopology) throws {
        for exchange in topology.exchanges { try declareExchange(exchange) }
        for queue in topology.queues { try declareQueue(queue) }
        for binding in topology.bindings { try bind(binding) }
    }

    @discardableResult
    func purgeQueue(_ name: String) throws -> Int {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        let ok = amqp_queue_purge(state, channel, arena.bytes(name))
        try rpc("queue.purge \(name)")
        return Int(ok?.pointee.message_count ?? 0)
    }

    func deleteQueue(_ name: String) throws {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        _ = amqp_queue_delete(state, channel, arena.bytes(name), 0, 0)
        try rpc("queue.delete \(name)")
    }

    func deleteExchange(_ name: String) throws {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        _ = amqp_exchange_delete(state, channel, arena.bytes(name), 0)
        try rpc("exchange.delete \(name)")
    }

    // MARK: Publishing and consuming primitives

    func confirmSelect() throws {
        _ = amqp_confirm_select(state, channel)
        try rpc("confirm.select")
    }

    func publish(_ message: AMQPOutgoingMessage) throws {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        var props = arena.properties(message.properties)
        let status = amqp_basic_publish(
            state, channel, arena.bytes(message.exchange), arena.bytes(message.routingKey),
            message.mandatory ? 1 : 0, 0, &props, arena.bytes(message.body))
        if status != AMQP_STATUS_OK.rawValue { isOpen = false }
        try AMQPStatus.check(status, "basic.publish to \(message.exchange) (\(message.routingKey))")
    }

    func qos(prefetch: UInt16) throws {
        _ = amqp_basic_qos(state, channel, 0, prefetch, 0)
        try rpc("basic.qos")
    }

    func cancel(consumerTag: String) throws {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        _ = amqp_basic_cancel(state, channel, arena.bytes(consumerTag))
        try rpc("basic.cancel")
    }

    func consume(queue: String, consumerTag: String) throws {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        _ = amqp_basic_consume(
            state, channel, arena.bytes(queue), arena.bytes(consumerTag), 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil))
        try rpc("basic.consume \(queue)")
    }

    /// Waits up to `timeout` for the next frame; nil on timeout.
    func waitFrame(timeout: Duration) throws -> amqp_frame_t? {
        var frame = amqp_frame_t()
        var tv = timeval(duration: timeout)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &tv)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        if status != AMQP_STATUS_OK.rawValue {
            isOpen = false
            throw AMQPStatus.error(status: status, "waiting for the broker")
        }
        return frame
    }

    /// Reads the content (header and body) that follows a basic.return / basic.get-ok.
    func readContent() throws -> (properties: AMQPProperties, body: [UInt8]) {
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        if reply.reply_type != AMQP_RESPONSE_NORMAL { isOpen = false }
        try AMQPStatus.check(reply, "reading message content")
        defer { amqp_destroy_message(&message) }
        return (decodeProperties(message.properties), byteArray(message.body))
    }

    func ack(_ tag: UInt64, multiple: Bool = false) throws {
        try AMQPStatus.check(amqp_basic_ack(state, channel, tag, multiple ? 1 : 0), "basic.ack")
    }

    func nack(_ tag: UInt64, requeue: Bool) throws {
        try AMQPStatus.check(amqp_basic_nack(state, channel, tag, 0, requeue ? 1 : 0), "basic.nack")
    }

    func reject(_ tag: UInt64, requeue: Bool) throws {
        try AMQPStatus.check(amqp_basic_reject(state, channel, tag, requeue ? 1 : 0), "basic.reject")
    }

    /// Fetches one message without a subscription (`basic.get`); nil when the queue is empty.
    func get(queue: String, autoAck: Bool) throws -> AMQPDelivery? {
        let arena = CArena()
        defer { withExtendedLifetime(arena) {} }  // C reads the arena's memory during the calls below
        let reply = amqp_basic_get(state, channel, arena.bytes(queue), autoAck ? 1 : 0)
        try AMQPStatus.check(reply, "basic.get \(queue)")
        guard reply.reply.id == AMQPMethod.basicGetOK, let decoded = reply.reply.decoded else { return nil }
        let ok = decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        let tag = ok.delivery_tag, redelivered = ok.redelivered != 0
        let exchange = string(ok.exchange), routingKey = string(ok.routing_key)
        let content = try readContent()
        return AMQPDelivery(
            deliveryTag: tag, redelivered: redelivered, exchange: exchange, routingKey: routingKey,
            body: content.body, properties: content.properties, generation: 0)
    }
}

extension Result {
    var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
}

extension timeval {
    init(duration: Duration) {
        let micros = duration.wholeMicroseconds
        self.init(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
    }
}
