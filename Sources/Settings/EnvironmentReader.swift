import Foundation
import Logging

/// Typed reads of environment variables, one way for every process: an unset variable keeps
/// the default (the read returns nil), a malformed one is a ``ConfigurationError`` naming it,
/// never a silent default.
package struct EnvironmentReader: Sendable {
    /// The variables.
    package let values: [String: String]

    /// Reads from `values` (the process environment by default).
    package init(_ values: [String: String] = ProcessInfo.processInfo.environment) { self.values = values }

    /// The raw value; nil when unset or empty.
    package func string(_ name: String) -> String? {
        guard let value = values[name], !value.isEmpty else { return nil }
        return value
    }

    /// A whole number in `range`.
    package func int(_ name: String, in range: ClosedRange<Int>, unit: String = "") throws -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            let what =
                range.upperBound == .max
                ? (range.lowerBound == 0 ? "a non-negative whole number" : "a positive whole number")
                : "a whole number from \(range.lowerBound) to \(range.upperBound)"
            throw ConfigurationError("\(name) must be \(what)\(unit.isEmpty ? "" : " of \(unit)"), not \(text)")
        }
        return value
    }

    /// A whole number above zero.
    package func positive(_ name: String, unit: String = "") throws -> Int? { try int(name, in: 1...Int.max, unit: unit) }

    /// A whole number, zero or more.
    package func nonNegative(_ name: String, unit: String = "") throws -> Int? { try int(name, in: 0...Int.max, unit: unit) }

    /// A positive decimal number.
    package func positiveDecimal(_ name: String) throws -> Double? {
        guard let text = string(name) else { return nil }
        guard let value = Double(text), value > 0, value.isFinite else { throw ConfigurationError("\(name) must be a positive number, not \(text)") }
        return value
    }

    /// A positive duration given in milliseconds (`…_MS`).
    package func milliseconds(_ name: String) throws -> Duration? { try positive(name, unit: "milliseconds").map { .milliseconds($0) } }

    /// A positive duration given in seconds (`…_SECONDS`).
    package func seconds(_ name: String) throws -> Duration? { try positive(name, unit: "seconds").map { .seconds($0) } }

    /// A TCP port.
    package func port(_ name: String) throws -> Int? { try int(name, in: 1...65_535) }

    /// `true` exactly.
    package func flag(_ name: String) -> Bool { values[name] == "true" }

    /// A comma-separated list, trimmed, without empty items.
    package func list(_ name: String) -> [String]? {
        string(name).map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    /// `LOG_LEVEL`: trace, debug, info, notice, warning, error or critical.
    package func logLevel() throws -> Logger.Level? {
        guard let text = string("LOG_LEVEL") else { return nil }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ConfigurationError("LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical")
        }
        return level
    }
}
