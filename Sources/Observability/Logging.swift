import Foundation
import Logging
import Synchronization

/// How every Emporium process logs: one JSON object per line on standard error
/// (`LOG_FORMAT=json`, the default), or plain text for development (`LOG_FORMAT=text`).
package enum EmporiumLogging {
    /// Installs the log handler for this process, from `LOG_FORMAT`. Call once, first thing.
    package static func bootstrap(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        let text = environment["LOG_FORMAT"]?.lowercased() == "text"
        LoggingSystem.bootstrap { label in
            text ? StreamLogHandler.standardError(label: label) as any LogHandler : JSONLogHandler(label: label)
        }
    }
}

/// Writes each entry as one JSON object on one line: `ts`, `level`, `logger`, `msg`, then
/// the metadata (`request.id`, `order.id`, `message.id`, `trace.id`, `amqp.queue`, ...).
/// Metadata whose key names a secret (password, token, secret, authorization, cookie) is
/// written as `[redacted]`: a mistake at a call site cannot leak one.
package struct JSONLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level = .info
    package let label: String
    private let write: @Sendable (String) -> Void

    /// A handler writing to standard error.
    package init(label: String) {
        self.init(label: label) { line in FileHandle.standardError.write(Data(line.utf8)) }
    }

    /// A handler writing lines to `write` (tests).
    package init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let secretWords = ["password", "token", "secret", "authorization", "cookie"]

    package func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt
    ) {
        var fields: [String: Any] = [:]
        for (key, value) in metadata.merging(explicit ?? [:], uniquingKeysWith: { _, new in new }) {
            let lowered = key.lowercased()
            fields[key] = Self.secretWords.contains(where: lowered.contains) ? "[redacted]" : Self.json(value)
        }
        fields["ts"] = Self.timestamp()
        fields["level"] = level.rawValue
        fields["logger"] = label
        fields["msg"] = message.description
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        write(String(decoding: data, as: UTF8.self) + "\n")
    }

    private static func json(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): return string
        case .stringConvertible(let convertible): return convertible.description
        case .array(let array): return array.map(json)
        case .dictionary(let dictionary): return dictionary.mapValues(json)
        }
    }

    private static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }
}

/// The trace id (32 hex digits) of a W3C `traceparent`, for log lines.
package func traceID(ofTraceparent traceparent: String?) -> String? {
    guard let parts = traceparent?.split(separator: "-"), parts.count == 4, parts[1].count == 32 else { return nil }
    return String(parts[1])
}
