import Foundation
import HTTPTypes
import Hummingbird
import Messaging
import ServiceLifecycle

/// `GET /admin/live`: the system's events as Server-Sent Events, from this process's
/// ``EventFanOut``. A reconnecting browser sends `Last-Event-ID` and first gets the events it
/// missed that the fan-out still holds; a comment every 15 s keeps proxies from closing an
/// idle stream. Pages re-render the parts an event concerns (see `console.js`).
struct LiveStream: Sendable {
    let feed: EventFanOut
    static let heartbeat: Duration = .seconds(15)

    func stream(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let (missed, events) = feed.subscribe(after: Self.lastEventID(request))
        return Self.response(prelude: missed.map(Self.frame), frames: events.map(Self.frame))
    }

    /// The `Last-Event-ID` a reconnecting client sent, if any.
    static func lastEventID(_ request: Request) -> Int? {
        request.headers[HTTPField.Name("Last-Event-ID")!].flatMap { Int($0) }
    }

    /// An SSE response: the `prelude` frames, then each of `frames` until it ends (then the
    /// stream ends), the client goes away, or the process shuts down.
    static func response<Frames: AsyncSequence & Sendable>(prelude: [String] = [], frames: Frames) -> Response
    where Frames.Element == String, Frames.Failure == Never {
        let body = ResponseBody { writer in
            let (lines, output) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(EventFanOut.subscriberBuffer))
            output.yield("retry: 3000\n: connected\n\n")
            for frame in prelude { output.yield(frame) }
            // Two helpers feed `lines`; this task alone writes (the writer is not Sendable).
            // When the browser goes away the write throws and the helpers are cancelled, which
            // ends the iteration of `frames` and with it the subscription behind them.
            let helpers = Task {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await frame in frames { output.yield(frame) }
                        output.finish()
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: heartbeat)
                            output.yield(": keepalive\n\n")
                        }
                    }
                    await group.next()
                    group.cancelAll()
                }
            }
            // A stream never ends by itself: at shutdown it must, or the server's graceful
            // shutdown would wait for it forever.
            await withGracefulShutdownHandler {
                do {
                    for await line in lines { try await writer.write(ByteBuffer(string: line)) }
                } catch {
                    // The browser went away.
                }
            } onGracefulShutdown: {
                output.finish()
            }
            helpers.cancel()
            output.finish()
            try? await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: body)
    }

    /// One event as an SSE frame: its sequence as the id, its facts as JSON.
    static func frame(_ event: LiveEvent) -> String {
        var data: [String: String] = ["type": event.type, "occurred_at": ISO8601DateFormatter().string(from: event.occurredAt)]
        if let orderId = event.orderId { data["order_id"] = orderId.uuidString.lowercased() }
        if let status = event.status { data["status"] = status }
        let json = (try? JSONSerialization.data(withJSONObject: data, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return "id: \(event.sequence)\nevent: change\ndata: \(json)\n\n"
    }
}
