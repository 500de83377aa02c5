import Foundation
import Hummingbird

/// The fields of an `application/x-www-form-urlencoded` body (what a plain HTML form posts).
struct FormFields: Sendable {
    /// Form bodies above this size are refused (413): no console form comes close.
    static let maxBytes = 64 * 1024

    private(set) var values: [(String, String)] = []

    init(_ text: String) {
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (raw: Substring) in (String(raw).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "") }
            values.append((decode(parts[0]), parts.count > 1 ? decode(parts[1]) : ""))
        }
    }

    /// Reads and parses the request's body.
    static func read(_ request: Request) async throws -> FormFields {
        let body = try await request.body.collect(upTo: maxBytes)
        return FormFields(String(buffer: body))
    }

    /// The first value of `name`, trimmed; nil when missing or empty.
    subscript(_ name: String) -> String? {
        values.first { $0.0 == name }.map { $0.1.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The first value of `name` exactly as sent (a password keeps its spaces); nil when missing.
    func raw(_ name: String) -> String? { values.first { $0.0 == name }?.1 }

    /// Every value of `name` (checkboxes).
    func all(_ name: String) -> [String] { values.filter { $0.0 == name }.map(\.1) }
}
