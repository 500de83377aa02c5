import Foundation
import Logging
import Observability
import Synchronization
import Testing

/// The JSON log line every process writes: valid JSON whatever the text, sorted keys,
/// secrets redacted, the fixed fields authoritative.
@Suite("JSON log lines", .timeLimit(.minutes(1)))
struct JSONLogLineTests {
    /// Lines a handler wrote, as text.
    final class Lines: Sendable {
        private let lines = Mutex<[String]>([])
        func add(_ bytes: [UInt8]) { lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        var all: [String] { lines.withLock { $0 } }
    }

    func logger(_ lines: Lines) -> Logger {
        var logger = Logger(label: "emporium.test") { label in JSONLogHandler(label: label) { lines.add($0) } }
        logger.logLevel = .debug
        return logger
    }

    func object(_ line: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
    }

    @Test("one object per line, newline-terminated, keys in order, any text escaped so it parses back unchanged")
    func escaping() throws {
        let lines = Lines()
        var log = logger(lines)
        log[metadataKey: "order.id"] = "3F2504E0"
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{07} nul \u{00} slash / é 日本 🚀 \u{2028}"
        log.warning("\(awkward)", metadata: ["amqp.queue": "orders", "attempt": "\(3)", "zeta": .array(["a", .dictionary(["k": "v\""])])])
        let line = try #require(lines.all.first)
        #expect(lines.all.count == 1)
        #expect(line.hasSuffix("}\n") && line.dropLast().allSatisfy { $0 != "\n" }, "one line: \(line)")
        let fields = try object(line)
        #expect(fields["msg"] as? String == awkward)
        #expect(fields["level"] as? String == "warning")
        #expect(fields["logger"] as? String == "emporium.test")
        #expect(fields["order.id"] as? String == "3F2504E0")
        #expect(fields["amqp.queue"] as? String == "orders")
        #expect(fields["attempt"] as? String == "3")
        let zeta = try #require(fields["zeta"] as? [Any])
        #expect(zeta.first as? String == "a")
        #expect((zeta.last as? [String: String]) == ["k": "v\""])
        // Sorted keys, as the previous JSONSerialization-based handler wrote them.
        let keys = ["amqp.queue", "attempt", "level", "logger", "msg", "order.id", "ts", "zeta"]
        let positions = keys.map { line.range(of: "\"\($0)\":")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted(), "\(line)")
    }

    @Test("metadata whose key names a secret is redacted, in any case, from the handler's and the entry's metadata")
    func redaction() throws {
        let lines = Lines()
        var log = logger(lines)
        log[metadataKey: "stripe.Secret_key"] = "sk_live_123"
        log.info(
            "signed in",
            metadata: ["password": "hunter2", "refresh_token": "rt-abc", "Authorization": "Bearer xyz", "set-cookie": "s=1", "user.id": "u-1"])
        let line = try #require(lines.all.first)
        for secret in ["sk_live_123", "hunter2", "rt-abc", "Bearer xyz", "s=1"] { #expect(!line.contains(secret), "\(line)") }
        let fields = try object(line)
        for key in ["stripe.Secret_key", "password", "refresh_token", "Authorization", "set-cookie"] {
            #expect(fields[key] as? String == "[redacted]", "\(key): \(line)")
        }
        #expect(fields["user.id"] as? String == "u-1")
    }

    @Test("an entry's metadata wins over the handler's, and neither can replace ts, level, logger or msg")
    func precedence() throws {
        let lines = Lines()
        var log = logger(lines)
        log[metadataKey: "request.id"] = "handler"
        log[metadataKey: "level"] = "forged"
        log.error("real message", metadata: ["request.id": "entry", "msg": "forged", "ts": "forged"])
        let line = try #require(lines.all.first)
        let fields = try object(line)
        #expect(fields["request.id"] as? String == "entry")
        #expect(fields["level"] as? String == "error")
        #expect(fields["msg"] as? String == "real message")
        #expect(fields["ts"] as? String != "forged")
        #expect(fields.count == 5, "\(fields)")
    }

    @Test("ts is the entry's time in UTC with milliseconds, as ISO 8601 parses it")
    func timestamp() throws {
        let lines = Lines()
        let before = Date()
        logger(lines).info("now")
        let after = Date()
        let line = try #require(lines.all.first)
        let ts = try #require(try object(line)["ts"] as? String)
        #expect(ts.count == 24 && ts.hasSuffix("Z"), "\(ts)")
        let parsed = try Date(ts, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        #expect(parsed.timeIntervalSince(before) > -0.002 && after.timeIntervalSince(parsed) > -0.002, "\(ts) not between \(before) and \(after)")
    }
}
