import AsyncHTTPClient
import Domain
import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import Messaging
import NIOCore
import ServiceLifecycle
import TestSupport
import Testing

@testable import API

/// `GET /api/v1/orders/{id}/events` against the real stack: who may listen, the order of the
/// events, the end at a terminal status, and a reconnect with `Last-Event-ID`.
@Suite("Order event stream (Server-Sent Events and WebSocket)", .timeLimit(.minutes(3)))
struct OrderEventStreamTests {
    /// One SSE frame.
    struct Frame {
        var id: Int?
        var event = "message"
        var data: [String: String] = [:]
    }

    /// What a read of the stream saw: the HTTP status, the frames, and whether the server
    /// ended the stream (as opposed to the reader stopping once `until` held).
    struct Read {
        let status: Int
        let frames: [Frame]
        let ended: Bool
    }

    /// Reads `GET /api/v1/orders/{id}/events` until the server ends it, `until` holds for the
    /// frames so far, or 30 s pass (a failure, for the head and the body alike).
    func read(
        _ stack: Stack, _ orderId: UUID, token: String?, lastEventID: Int? = nil, until: @escaping @Sendable ([Frame]) -> Bool = { _ in false }
    ) async throws -> Read {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(stack.port)/api/v1/orders/\(orderId.uuidString.lowercased())/events")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: String(lastEventID)) }
        let deadline = ContinuousClock.now + .seconds(30)
        let response = try await HTTPClient.shared.execute(request, deadline: .now() + .seconds(30))
        guard response.status == .ok else { return Read(status: Int(response.status.code), frames: [], ended: true) }
        #expect(response.headers.first(name: "content-type") == "text/event-stream")
        return try await withThrowingTaskGroup(of: Read.self) { group in
            group.addTask { try await Self.frames(of: response.body, until: until) }
            group.addTask {
                try await Task.sleep(until: deadline)
                throw TestFailure("the event stream of \(orderId) neither ended nor showed what was awaited within 30 s")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// The SSE frames of `body`, until it ends or `until` holds for the frames so far.
    static func frames(of body: HTTPClientResponse.Body, until: @Sendable ([Frame]) -> Bool) async throws -> Read {
        var text = ""
        var frames: [Frame] = []
        for try await chunk in body {
            text += String(buffer: chunk)
            while let end = text.range(of: "\n\n") {
                let block = text[..<end.lowerBound]
                text = String(text[end.upperBound...])
                if let frame = frame(block) { frames.append(frame) }
            }
            if until(frames) { return Read(status: 200, frames: frames, ended: false) }
        }
        return Read(status: 200, frames: frames, ended: true)
    }

    /// One SSE block as a frame; nil for a block without data (a comment or a `retry:`).
    static func frame(_ block: Substring) -> Frame? {
        var frame = Frame()
        var isEvent = false
        for line in block.split(separator: "\n") where !line.hasPrefix(":") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "id": frame.id = Int(parts[1])
            case "event": frame.event = parts[1]
            case "data":
                isEvent = true
                frame.data = (try? JSONSerialization.jsonObject(with: Data(parts[1].utf8)) as? [String: String]) ?? [:]
            default: break
            }
        }
        return isEvent ? frame : nil
    }

    @Test("the owner gets the status now, then the order's changes in order, and the stream ends at CONFIRMED")
    func ordered() async throws {
        var options = Stack.Options()
        options.providerLatency = .seconds(2)
        try await Stack.run(options) { stack in
            let (_, _, (_, token)) = try await stack.filledCart()
            let orderId = try await stack.placeOrder(token)
            let read = try await read(stack, orderId, token: token)
            #expect(read.ended, "the stream did not end")
            let first = try #require(read.frames.first)
            #expect(first.event == "status" && first.data["order_id"] == orderId.uuidString.lowercased())
            #expect(["PENDING", "AWAITING_PAYMENT"].contains(first.data["status"] ?? ""), "opened at \(first.data)")
            let changes = read.frames.dropFirst()
            #expect(!changes.isEmpty && changes.allSatisfy { $0.event == "change" && $0.data["order_id"] == orderId.uuidString.lowercased() })
            let ids = changes.compactMap(\.id)
            #expect(ids.count == changes.count && ids == ids.sorted() && Set(ids).count == ids.count, "ids \(ids)")
            // The statuses announced follow the state machine, and the last one is CONFIRMED.
            var status = OrderStatus(rawValue: first.data["status"] ?? "")
            for announced in changes.compactMap({ $0.data["status"] }).compactMap(OrderStatus.init(rawValue:)) where announced != status {
                #expect(status?.allowedNext.contains(announced) == true, "\(String(describing: status)) → \(announced) in \(read.frames.map(\.data))")
                status = announced
            }
            #expect(changes.last?.data["status"] == "CONFIRMED")
            #expect(try await stack.orderStatus(orderId).status == "CONFIRMED")
        }
    }

    @Test("an order already CONFIRMED: its status, and the stream ends at once")
    func alreadyTerminal() async throws {
        try await Stack.run { stack in
            let (_, _, (_, token)) = try await stack.filledCart()
            let orderId = try await stack.placeOrder(token)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let read = try await read(stack, orderId, token: token)
            #expect(read.ended)
            #expect(read.frames.count == 1)
            #expect(read.frames.first?.event == "status" && read.frames.first?.data["status"] == "CONFIRMED")
        }
    }

    @Test("no token is 401; another customer's order is 404 to them; an admin may listen")
    func authorization() async throws {
        try await Stack.run { stack in
            let (admin, _, (_, token)) = try await stack.filledCart()
            let orderId = try await stack.placeOrder(token)
            #expect(try await read(stack, orderId, token: nil).status == 401)
            let (_, other) = try await stack.customer()
            #expect(try await read(stack, orderId, token: other).status == 404)
            #expect(try await read(stack, UUID(), token: token).status == 404)
            let path = "/api/v1/orders/\(orderId.uuidString.lowercased())/events"
            let malformed = try await stack.request(.get, path, token: token, headers: [HTTPField.Name("Last-Event-ID")!: "12a"])
            #expect(malformed.status == .unprocessableContent && malformed.body.contains("Last-Event-ID"))
            #expect(try await stack.request(.get, path + "/ws?last_event_id=-1", token: token).status == .unprocessableContent)
            let watched = try await read(stack, orderId, token: admin)
            #expect(watched.status == 200 && watched.ended && watched.frames.last?.data["status"] == "CONFIRMED")
        }
    }

    @Test("a client that reconnects with Last-Event-ID gets the events it missed, then the end")
    func reconnect() async throws {
        var options = Stack.Options()
        options.providerLatency = .seconds(2)
        try await Stack.run(options) { stack in
            let (_, _, (_, token)) = try await stack.filledCart()
            let orderId = try await stack.placeOrder(token)
            // Listen until the first change, then hang up.
            let first = try await read(stack, orderId, token: token) { frames in frames.contains { $0.event == "change" } }
            #expect(!first.ended)
            let lastSeen = try #require(first.frames.last { $0.event == "change" }?.id)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            // The database says CONFIRMED once the order worker commits; its `order.confirmed`
            // reaches this process's feed a little later (published after that commit, then
            // delivered). A reconnect in between rightly gets the status without that event,
            // so the client reconnects until the feed holds it, within a deadline.
            var again = Read(status: 0, frames: [], ended: false)
            _ = try await TestEnvironment.eventually(timeout: .seconds(30)) {
                again = try await read(stack, orderId, token: token, lastEventID: lastSeen)
                return again.frames.dropFirst().contains { $0.data["status"] == "CONFIRMED" }
            }
            #expect(again.ended)
            #expect(again.frames.first?.event == "status" && again.frames.first?.data["status"] == "CONFIRMED")
            let missed = again.frames.dropFirst()
            #expect(!missed.isEmpty && missed.allSatisfy { ($0.id ?? 0) > lastSeen }, "missed \(missed.map(\.id))")
            #expect(missed.contains { $0.data["status"] == "CONFIRMED" }, "the confirmation was not among the missed events")
        }
    }

    // MARK: WebSocket

    /// The text messages of the order's WebSocket until the server closes it (or 30 s).
    func socket(_ stack: Stack, _ orderId: UUID, token: String, lastEventID: Int? = nil) async throws -> (messages: [[String: Any]], close: String?) {
        var settings = WebSocketClientConfiguration()
        settings.additionalHeaders = [.authorization: "Bearer \(token)"]
        let configuration = settings
        let url =
            "ws://127.0.0.1:\(stack.port)/api/v1/orders/\(orderId.uuidString.lowercased())/events/ws" + (lastEventID.map { "?last_event_id=\($0)" } ?? "")
        let collected = Collected()
        let close = try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                let frame = try await WebSocketClient.connect(
                    url: url, configuration: configuration,
                    logger: Logger(label: "test.ws")
                ) { inbound, _, _ in
                    for try await message in inbound.messages(maxSize: 1 << 16) {
                        if case .text(let text) = message { await collected.append(text) }
                    }
                }
                return frame.map { "\($0.closeCode)" } ?? "none"
            }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                throw TestFailure("the WebSocket was not closed within 30 s")
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        let messages = await collected.texts.map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:] }
        return (messages, close)
    }

    actor Collected {
        var texts: [String] = []
        func append(_ text: String) { texts.append(text) }
    }

    @Test("WebSocket: the owner gets the status and the changes, the server closes at CONFIRMED; others are refused as on the route")
    func webSocket() async throws {
        var options = Stack.Options()
        options.providerLatency = .seconds(2)
        try await Stack.run(options) { stack in
            let (_, _, (_, token)) = try await stack.filledCart()
            let orderId = try await stack.placeOrder(token)
            let (messages, close) = try await socket(stack, orderId, token: token)
            #expect(close != nil)
            #expect(messages.first?["event"] as? String == "status")
            #expect(["PENDING", "AWAITING_PAYMENT"].contains(messages.first?["status"] as? String ?? ""), "\(messages)")
            let ids = messages.dropFirst().compactMap { $0["id"] as? Int }
            #expect(!ids.isEmpty && ids == ids.sorted())
            #expect(messages.last?["status"] as? String == "CONFIRMED", "\(messages)")
            // Without an upgrade, the route answers as the SSE stream's does, and 426 to the owner.
            let path = "/api/v1/orders/\(orderId.uuidString.lowercased())/events/ws"
            #expect(try await stack.request(.get, path).status == .unauthorized)
            let (_, other) = try await stack.customer()
            #expect(try await stack.request(.get, path, token: other).status == .notFound)
            #expect(try await stack.request(.get, path, token: token).status == .upgradeRequired)
            // Another customer's upgrade is not accepted.
            var refused = false
            do { _ = try await socket(stack, orderId, token: other) } catch { refused = true }
            #expect(refused, "another customer's WebSocket was opened")
        }
    }

    @Test("WebSocket: reconnecting with last_event_id gets the missed events after the status, then the close")
    func webSocketResume() async throws {
        var options = Stack.Options()
        options.providerLatency = .seconds(2)
        try await Stack.run(options) { stack in
            let (_, _, (_, token)) = try await stack.filledCart()
            let orderId = try await stack.placeOrder(token)
            // The first change seen on the SSE stream marks where the client was.
            let first = try await read(stack, orderId, token: token) { frames in frames.contains { $0.event == "change" } }
            let lastSeen = try #require(first.frames.last { $0.event == "change" }?.id)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            // As in the SSE reconnect: the client reconnects until the feed holds `order.confirmed`.
            var (messages, close): ([[String: Any]], String?) = ([], nil)
            _ = try await TestEnvironment.eventually(timeout: .seconds(30)) {
                (messages, close) = try await socket(stack, orderId, token: token, lastEventID: lastSeen)
                return messages.dropFirst().contains { $0["status"] as? String == "CONFIRMED" }
            }
            #expect(close != nil)
            #expect(messages.first?["event"] as? String == "status" && messages.first?["status"] as? String == "CONFIRMED")
            let missed = messages.dropFirst()
            #expect(!missed.isEmpty && missed.allSatisfy { ($0["id"] as? Int ?? 0) > lastSeen }, "\(messages)")
            #expect(missed.contains { $0["status"] as? String == "CONFIRMED" })
        }
    }

    @Test("a subscription whose first read fails or finds nothing is removed at once; one that reads is kept")
    func failedReadLeavesNoSubscriber() async throws {
        try await Stack.apiOnly { stack in
            let logger = Logger(label: "test")
            let feed = EventFanOut(amqp: stack.amqp, names: stack.names, instance: "stream-test", logger: logger)
            let group = ServiceGroup(services: [feed], gracefulShutdownSignals: [], logger: logger)
            let running = Task { try await group.run() }
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                _ = try await feed.subscribe(after: nil, thenRead: { () async throws -> Int? in throw Refused() })
            }
            let nothing = try await feed.subscribe(after: nil, thenRead: { nil as Int? })
            #expect(nothing == nil)
            #expect(await TestEnvironment.eventually(timeout: .seconds(5)) { feed.subscriberCount == 0 }, "\(feed.subscriberCount) subscribers left")
            let kept = try await feed.subscribe(after: nil, thenRead: { 7 })
            #expect(kept?.value == 7 && feed.subscriberCount == 1)
            await group.triggerGracefulShutdown()
            _ = await running.result
        }
    }

    @Test("a stream whose feed missed the order's events still ends: it reads the status again and says it")
    func missedEvents() async throws {
        var options = Stack.Options()
        options.providerLatency = .seconds(2)
        try await Stack.run(options) { stack in
            // A feed that never connects (nothing listens on port 1) sees none of the order's
            // events, as when the process's feed connects too late or loses its connection.
            var unreachable = stack.amqp
            unreachable.port = 1
            let logger = Logger(label: "test")
            let feed = EventFanOut(amqp: unreachable, names: stack.names, instance: "missed-test", logger: logger)
            let group = ServiceGroup(services: [feed], gracefulShutdownSignals: [], logger: logger)
            let running = Task { try await group.run() }
            let (_, _, (_, token)) = try await stack.filledCart()
            let orderId = try await stack.placeOrder(token)
            let items = try #require(try await OrderWatch(pool: stack.db, feed: feed).open(orderId, after: nil))
            let said = try await withThrowingTaskGroup(of: [OrderStatus].self) { group in
                group.addTask {
                    var said: [OrderStatus] = []
                    for await item in items {
                        guard case .status(let status) = item else { throw TestFailure("a change came from a feed that is not connected: \(item)") }
                        said.append(status)
                    }
                    return said
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(30))
                    throw TestFailure("the stream did not end within 30 s")
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            #expect(feed.connection == nil)
            #expect(["PENDING", "AWAITING_PAYMENT"].contains(said.first?.rawValue ?? ""), "opened at \(said)")
            #expect(said.last == .confirmed, "said \(said)")
            #expect(Set(said).count == said.count, "a status said twice: \(said)")
            #expect(try await OrderWatch(pool: stack.db, feed: feed).open(UUID(), after: nil) == nil)
            await group.triggerGracefulShutdown()
            _ = await running.result
        }
    }
}
