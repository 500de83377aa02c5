import Foundation

/// The key conversions of `JSONEncoder.KeyEncodingStrategy.convertToSnakeCase` and
/// `JSONDecoder.KeyDecodingStrategy.convertFromSnakeCase`, for ``JSONValueEncoder`` and
/// ``JSONValueDecoder``. The same keys must come out as through Foundation's coders, since
/// both kinds of coder read and write the same events, so these follow Foundation's
/// algorithms step by step (JSONCodingTests compares them on awkward keys).
extension EmporiumJSON {
    /// `orderId` → `order_id`, `myURLKey` → `my_url_key`: a word ends before an upper-case
    /// letter, and a run of capitals followed by a lower-case letter ends before its last
    /// capital.
    package static func snakeCase(fromCamelCase key: String) -> String {
        let scalars = Array(key.unicodeScalars)
        guard scalars.count > 1 else { return key.lowercased() }
        var words: [Range<Int>] = []
        var wordStart = 0
        var searchStart = 1
        while let upper = scalars[searchStart...].firstIndex(where: \.properties.isUppercase) {
            words.append(wordStart..<upper)
            guard let lower = scalars[upper...].firstIndex(where: \.properties.isLowercase) else {
                wordStart = upper
                searchStart = scalars.count
                break
            }
            if lower == upper + 1 {
                wordStart = upper
            } else {
                words.append(upper..<(lower - 1))
                wordStart = lower - 1
            }
            searchStart = lower + 1
            if searchStart >= scalars.count { break }
        }
        words.append(wordStart..<scalars.count)
        return words.map { String(String.UnicodeScalarView(scalars[$0])).lowercased() }.joined(separator: "_")
    }

    /// `order_id` → `orderId`: leading and trailing underscores kept, the first word
    /// lower-case, the others capitalized; a key without inner underscores is left as it is.
    package static func camelCase(fromSnakeCase key: String) -> String {
        guard key.utf8.contains(UInt8(ascii: "_")) else { return key }
        guard let first = key.firstIndex(where: { $0 != "_" }) else { return key }
        var last = key.index(before: key.endIndex)
        while last > first, key[last] == "_" { key.formIndex(before: &last) }
        let words = key[first...last].split(separator: "_")
        guard words.count > 1 else { return key }
        let joined = ([words[0].lowercased()] + words.dropFirst().map(capitalized)).joined()
        return String(key[..<first]) + joined + String(key[key.index(after: last)...])
    }

    /// Foundation's `capitalized` for one word; ASCII words (all of Emporium's keys) without
    /// its word-breaking machinery.
    private static func capitalized(_ word: Substring) -> String {
        guard word.utf8.allSatisfy({ $0 >= 0x61 && $0 <= 0x7A }) else { return word.capitalized }
        return word.prefix(1).uppercased() + word.dropFirst()
    }
}
