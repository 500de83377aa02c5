import Domain
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One log entry as one line of JSON: `ts`, `level`, `logger`, `msg` and the metadata, keys
/// sorted, secrets redacted. Written by hand into bytes rather than through
/// `JSONSerialization`: a profile of the API under load (BENCHMARKS.md, 2026-12-02) put a
/// fifth of its CPU in the log line, most of it in Foundation's boxing of the values and
/// its locale-aware sorting of the keys.
package enum JSONLogLine {
    /// Metadata keys containing one of these (any case) are written as `[redacted]`, so a
    /// mistake at a call site cannot leak a secret.
    static let secretWords: [[UInt8]] = ["password", "token", "secret", "authorization", "cookie"].map { Array($0.utf8) }
    /// The fields every line has, which metadata cannot replace.
    static let fixedKeys: Set<String> = ["ts", "level", "logger", "msg"]

    /// The line for one entry, with its trailing newline. The fixed fields win over metadata
    /// of the same name; the entry's own metadata wins over the handler's.
    package static func render(
        level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, explicit: Logger.Metadata?, time: timespec
    ) -> [UInt8] {
        var fields: [(key: String, value: Field)] = []
        fields.reserveCapacity(metadata.count + (explicit?.count ?? 0) + 4)
        let fixed: [(String, Field)] = [
            ("ts", .text(timestamp(time))), ("level", .text(level.rawValue)), ("logger", .text(label)), ("msg", .text(message)),
        ]
        for (key, value) in metadata where explicit?[key] == nil && !fixedKeys.contains(key) {
            fields.append((key, isSecret(key) ? .text("[redacted]") : .value(value)))
        }
        for (key, value) in explicit ?? [:] where !fixedKeys.contains(key) {
            fields.append((key, isSecret(key) ? .text("[redacted]") : .value(value)))
        }
        fields += fixed
        fields.sort { $0.key < $1.key }

        var line: [UInt8] = []
        line.reserveCapacity(256)
        line.append(UInt8(ascii: "{"))
        for (index, field) in fields.enumerated() {
            if index > 0 { line.append(UInt8(ascii: ",")) }
            JSONValue.appendJSONString(field.key, to: &line)
            line.append(UInt8(ascii: ":"))
            switch field.value {
            case .text(let text): JSONValue.appendJSONString(text, to: &line)
            case .value(let value): appendValue(value, to: &line)
            }
        }
        line.append(contentsOf: "}\n".utf8)
        return line
    }

    private enum Field {
        case text(String)
        case value(Logger.Metadata.Value)
    }

    static func isSecret(_ key: String) -> Bool {
        let lowered = Array(key.lowercased().utf8)
        return secretWords.contains { word in
            guard lowered.count >= word.count else { return false }
            return (0...(lowered.count - word.count)).contains { start in lowered[start..<(start + word.count)].elementsEqual(word) }
        }
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to line: inout [UInt8]) {
        switch value {
        case .string(let string): JSONValue.appendJSONString(string, to: &line)
        case .stringConvertible(let convertible): JSONValue.appendJSONString(convertible.description, to: &line)
        case .array(let array):
            line.append(UInt8(ascii: "["))
            for (index, element) in array.enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                appendValue(element, to: &line)
            }
            line.append(UInt8(ascii: "]"))
        case .dictionary(let dictionary):
            line.append(UInt8(ascii: "{"))
            for (index, entry) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { line.append(UInt8(ascii: ",")) }
                JSONValue.appendJSONString(entry.key, to: &line)
                line.append(UInt8(ascii: ":"))
                appendValue(entry.value, to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
    }

    /// `2026-12-02T13:10:48.778Z`: UTC, milliseconds.
    static func timestamp(_ time: timespec) -> String {
        var seconds = time_t(time.tv_sec)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var text: [UInt8] = []
        text.reserveCapacity(24)
        func digits(_ value: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            while divisor > 0 {
                text.append(UInt8(ascii: "0") + UInt8((value / divisor) % 10))
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        text.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        text.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        text.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        text.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        text.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        text.append(UInt8(ascii: "."))
        digits(Int(time.tv_nsec) / 1_000_000, 3)
        text.append(UInt8(ascii: "Z"))
        return String(decoding: text, as: UTF8.self)
    }

    /// The wall clock now.
    static func now() -> timespec {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return time
    }

    /// Writes `bytes` to standard error with `write(2)`, through partial writes and `EINTR`.
    /// One call per line: a line shorter than `PIPE_BUF` is never interleaved with another
    /// thread's on a pipe.
    static func writeToStandardError(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // Standard error is gone: nothing else could report it.
                }
            }
        }
    }
}
