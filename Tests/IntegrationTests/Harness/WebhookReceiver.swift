import Foundation
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A merchant's webhook receiver on 127.0.0.1: records every request (headers, body, when)
/// and answers what the test scripts (`answer`), e.g. 500 twice and then 200.
final class WebhookReceiver: @unchecked Sendable {
    struct Received: Sendable {
        let headers: [String: String]
        let body: Data
        let at: ContinuousClock.Instant
        var eventId: String? { headers["emporium-event-id"] }
        var eventType: String? { headers["emporium-event-type"] }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    let port: Int
    var url: String { "http://127.0.0.1:\(port)/hooks/emporium" }
    private let listener: Int32
    private let lock = NSLock()
    private var received: [Received] = []
    /// Status and extra headers for a request, given what arrived before it (same event id).
    private var script: @Sendable (_ request: Received, _ earlierForEvent: Int) -> (Int, [String: String]) = { _, _ in (200, [:]) }

    init() throws {
        (listener, port) = try TestEnvironment.bindLoopback()
        Thread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                Thread { [self] in serve(client) }.start()
            }
        }.start()
    }

    /// Sets how the receiver answers from now on.
    func answer(_ script: @escaping @Sendable (_ request: Received, _ earlierForEvent: Int) -> (Int, [String: String])) {
        lock.withLock { self.script = script }
    }

    /// Every request so far.
    var requests: [Received] { lock.withLock { received } }

    /// The requests that carried event `id`.
    func requests(forEvent id: String) -> [Received] { requests.filter { $0.eventId == id } }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        var buffer: [UInt8] = []
        func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return false }
            buffer += chunk[..<count]
            return true
        }
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            var headerEnd: Int?
            while headerEnd == nil {
                if buffer.count >= 4 { headerEnd = (0...(buffer.count - 4)).first { Array(buffer[$0..<($0 + 4)]) == separator } }
                if headerEnd == nil, !fill() { return }
            }
            let head = String(decoding: buffer[..<headerEnd!], as: UTF8.self)
            buffer.removeFirst(headerEnd! + 4)
            var headers: [String: String] = [:]
            for line in head.split(separator: "\r\n").dropFirst() {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            while buffer.count < length { if !fill() { return } }
            let request = Received(headers: headers, body: Data(buffer[..<length]), at: .now)
            buffer.removeFirst(length)
            let (status, extra) = lock.withLock { () -> (Int, [String: String]) in
                let earlier = received.filter { $0.eventId == request.eventId }.count
                received.append(request)
                return script(request, earlier)
            }
            var reply = "HTTP/1.1 \(status) Scripted\r\nContent-Length: 0\r\n"
            for (name, value) in extra { reply += "\(name): \(value)\r\n" }
            reply += "\r\n"
            _ = reply.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        }
    }
}
