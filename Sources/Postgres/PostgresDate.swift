import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Dates are bound as `timestamptz` with microsecond precision (PostgreSQL's own), and
// decoded from `timestamptz`, `timestamp` (taken as UTC) and `date`. Every connection runs
// with `TimeZone=UTC` and `DateStyle=ISO`, so the server's text form is fixed.

extension Date: PostgresArrayElement {
    public static var postgresType: PostgresType { .timestamptz }
    public static var postgresArrayType: PostgresType { .timestamptzArray }

    public var postgresText: String? {
        let totalMicros = Int64((timeIntervalSince1970 * 1_000_000).rounded())
        var seconds = totalMicros / 1_000_000
        var micros = totalMicros % 1_000_000
        if micros < 0 {
            micros += 1_000_000
            seconds -= 1
        }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let microsText = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + " \(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
            + ".\(String(repeating: "0", count: 6 - microsText.count))\(microsText)+00"
    }

    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> Date {
        let text = try nonNull(text, column: column)
        guard [.timestamptz, .timestamp, .date].contains(type) else { throw mismatch(type, column: column) }
        guard let date = parseISOTimestamp(text) else { throw mismatch(type, column: column, text: text) }
        return date
    }

    /// Parses `YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH[:MM[:SS]]]`, as PostgreSQL prints in ISO style.
    static func parseISOTimestamp(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[index..<index + count] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            index += count
            return value
        }
        func expect(_ char: Character) -> Bool {
            guard index < bytes.count, bytes[index] == char.asciiValue else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2)
        else { return nil }
        var hour = 0, minute = 0, second = 0, micros = 0, offsetSeconds = 0
        if index < bytes.count {
            guard expect(" ") || expect("T"), let h = number(2), expect(":"), let m = number(2),
                expect(":"), let s = number(2)
            else { return nil }
            (hour, minute, second) = (h, m, s)
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                var digits = 0
                while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                    if digits < 6 { micros = micros * 10 + Int(bytes[index] - 48) }
                    digits += 1
                    index += 1
                }
                for _ in digits..<max(digits, 6) { micros *= 10 }
            }
            if index < bytes.count {
                let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
                guard bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") else { return nil }
                index += 1
                guard let oh = number(2) else { return nil }
                var offset = oh * 3600
                if expect(":"), let om = number(2) {
                    offset += om * 60
                    if expect(":"), let os = number(2) { offset += os }
                }
                offsetSeconds = sign * offset
            }
        }
        guard index == bytes.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = Int64(timegm(&parts)) - Int64(offsetSeconds)
        return Date(timeIntervalSince1970: Double(epoch) + Double(micros) / 1_000_000)
    }
}
