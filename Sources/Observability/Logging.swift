import Foundation
import Logging

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

/// Writes each entry as one JSON object on one line (``JSONLogLine``): `ts`, `level`,
/// `logger`, `msg`, then the metadata (`request.id`, `order.id`, `message.id`, `trace.id`,
/// `amqp.queue`, ...). Metadata whose key names a secret (password, token, secret,
/// authorization, cookie) is written as `[redacted]`: a mistake at a call site cannot leak one.
package struct JSONLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level = .info
    package let label: String
    private let write: @Sendable ([UInt8]) -> Void

    /// A handler writing to standard error.
    package init(label: String) {
        self.init(label: label, write: JSONLogLine.writeToStandardError)
    }

    /// A handler handing each line's bytes, newline included, to `write` (tests).
    package init(label: String, write: @escaping @Sendable ([UInt8]) -> Void) {
        self.label = label
        self.write = write
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        write(
            JSONLogLine.render(
                level: event.level, label: label, message: event.message.description, metadata: metadata, explicit: event.metadata,
                time: JSONLogLine.now()))
    }
}

/// The trace id (32 hex digits) of a W3C `traceparent`, for log lines.
package func traceID(ofTraceparent traceparent: String?) -> String? {
    guard let parts = traceparent?.split(separator: "-"), parts.count == 4, parts[1].count == 32 else { return nil }
    return String(parts[1])
}
