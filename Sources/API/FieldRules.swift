import Foundation

/// The checks behind request fields, written to mean exactly what the OpenAPI document says
/// (`APIContract`), so a client that follows the document is never refused and one that
/// does not is: lengths count Unicode code points like JSON Schema's `minLength` and
/// `maxLength`, "blank" means only spaces, tabs and line breaks, and NUL is refused because
/// PostgreSQL text cannot hold it.
enum FieldRules {
    /// Length in code points, as JSON Schema counts.
    static func length(_ text: String) -> Int { text.unicodeScalars.count }

    /// True when `text` has no NUL.
    static func hasNoNUL(_ text: String) -> Bool { !text.unicodeScalars.contains("\u{0}") }

    /// Required text: something besides spaces, tabs and line breaks, at most `max` code
    /// points, no NUL. (Document: `minLength 1`, `maxLength`, pattern ``nonBlankPattern``.)
    static func isText(_ text: String, max: Int) -> Bool {
        length(text) <= max && hasNoNUL(text) && text.unicodeScalars.contains { !" \t\r\n".unicodeScalars.contains($0) }
    }

    /// A control character: C0 (line breaks and tabs included), DEL, C1, and the Unicode line
    /// and paragraph separators. None may appear in a name or an address, which reach emails.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// A name or an address line: 1…`max` code points, something besides spaces, and no
    /// control character. (Document: pattern `NAME` in the generator.)
    static func isName(_ text: String, max: Int) -> Bool {
        (1...max).contains(length(text)) && !text.unicodeScalars.contains(where: isControl) && text.unicodeScalars.contains { $0 != " " }
    }

    /// An optional address line: at most `max` code points, no control character.
    static func isOptionalName(_ text: String?, max: Int) -> Bool {
        guard let text else { return true }
        return length(text) <= max && !text.unicodeScalars.contains(where: isControl)
    }

    /// What ``isName(_:max:)`` asks, for the problem body.
    static func nameRule(max: Int) -> String { "must be 1 to \(max) characters, not only spaces, without control characters or line breaks" }

    /// Optional free text: at most `max` code points, no NUL. (Pattern ``freeTextPattern``.)
    static func isFreeText(_ text: String?, max: Int) -> Bool {
        guard let text else { return true }
        return length(text) <= max && hasNoNUL(text)
    }

    /// Only ASCII letters, digits and the given extra characters, `min`…`max` long.
    static func isToken(_ text: String, extra: String, min: Int = 1, max: Int) -> Bool {
        (min...max).contains(length(text))
            && text.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || extra.unicodeScalars.contains(scalar))
            }
    }

    /// `^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`, at most 254 code points.
    static func isEmail(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard length(email) <= 254, parts.count == 2, isToken(String(parts[0]), extra: "._%+-", max: 254) else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return labels.count >= 2 && labels.allSatisfy { isToken(String($0), extra: "-", max: 254) }
    }

    /// `^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[!-~]*)?$`, at most 1000 code points.
    static func isHTTPURL(_ url: String) -> Bool {
        guard length(url) <= 1_000 else { return false }
        let rest: Substring
        if url.hasPrefix("https://") { rest = url.dropFirst(8) } else if url.hasPrefix("http://") { rest = url.dropFirst(7) } else { return false }
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        let hostAndPort = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let host = hostAndPort[0]
        guard host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ isToken(String($0), extra: "-", max: 1_000) }) else { return false }
        if hostAndPort.count == 2 {
            let port = hostAndPort[1]
            guard (1...5).contains(port.count), port.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) else { return false }
        }
        return path.unicodeScalars.allSatisfy { (0x21...0x7E).contains($0.value) }
    }

    /// The ISO-like code shape: exactly `count` ASCII capital letters.
    static func isUppercaseCode(_ text: String, count: Int) -> Bool {
        length(text) == count && text.unicodeScalars.allSatisfy { ("A"..."Z").contains($0) }
    }
}
