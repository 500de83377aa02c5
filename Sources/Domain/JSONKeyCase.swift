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
        // The profile of issue 15 found these conversions costly through Unicode properties and
        // per-word strings; ASCII keys (all of Emporium's) take bytes and range checks instead.
        let utf8 = Array(key.utf8)
        if utf8.allSatisfy({ $0 < 0x80 }) {
            let words = snakeWords(utf8, isUpper: { $0 >= 0x41 && $0 <= 0x5A }, isLower: { $0 >= 0x61 && $0 <= 0x7A })
            var bytes: [UInt8] = []
            bytes.reserveCapacity(utf8.count + words.count)
            for (number, word) in words.enumerated() {
                if number > 0 { bytes.append(UInt8(ascii: "_")) }
                for byte in utf8[word] { bytes.append(byte >= 0x41 && byte <= 0x5A ? byte + 32 : byte) }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        let scalars = Array(key.unicodeScalars)
        return snakeWords(scalars, isUpper: \.properties.isUppercase, isLower: \.properties.isLowercase)
            .map { String(String.UnicodeScalarView(scalars[$0])).lowercased() }.joined(separator: "_")
    }

    /// Foundation's word split for snake_case: a word ends before an upper-case letter, and a
    /// run of capitals followed by a lower-case letter ends before its last capital.
    private static func snakeWords<Unit>(_ units: [Unit], isUpper: (Unit) -> Bool, isLower: (Unit) -> Bool) -> [Range<Int>] {
        guard units.count > 1 else { return [0..<units.count] }
        var words: [Range<Int>] = []
        var wordStart = 0
        var searchStart = 1
        while let upper = units[searchStart...].firstIndex(where: isUpper) {
            words.append(wordStart..<upper)
            guard let lower = units[upper...].firstIndex(where: isLower) else {
                wordStart = upper
                break
            }
            if lower == upper + 1 {
                wordStart = upper
            } else {
                words.append(upper..<(lower - 1))
                wordStart = lower - 1
            }
            searchStart = lower + 1
            if searchStart >= units.count { break }
        }
        words.append(wordStart..<units.count)
        return words
    }

    /// `order_id` → `orderId`: leading and trailing underscores kept, the first word
    /// lower-case, the others capitalized; a key without inner underscores is left as it is.
    package static func camelCase(fromSnakeCase key: String) -> String {
        let utf8 = key.utf8
        guard utf8.contains(UInt8(ascii: "_")) else { return key }
        if let converted = camelCaseOfLowerASCII(Array(utf8)) { return converted }
        guard let first = key.firstIndex(where: { $0 != "_" }) else { return key }
        var last = key.index(before: key.endIndex)
        while last > first, key[last] == "_" { key.formIndex(before: &last) }
        let words = key[first...last].split(separator: "_")
        guard words.count > 1 else { return key }
        let joined = ([words[0].lowercased()] + words.dropFirst().map(capitalized)).joined()
        return String(key[..<first]) + joined + String(key[key.index(after: last)...])
    }

    /// `camelCase(fromSnakeCase:)` in bytes, for keys of lower-case ASCII letters and
    /// underscores (Emporium's); nil for any other key, which takes the general path (digits
    /// too: `capitalized` treats them by its own word rules).
    private static func camelCaseOfLowerASCII(_ utf8: [UInt8]) -> String? {
        let underscore = UInt8(ascii: "_")
        func isLower(_ byte: UInt8) -> Bool { byte >= 0x61 && byte <= 0x7A }
        guard utf8.allSatisfy({ isLower($0) || $0 == underscore }) else { return nil }
        guard let first = utf8.firstIndex(where: { $0 != underscore }) else { return nil }
        var last = utf8.count - 1
        while last > first, utf8[last] == underscore { last -= 1 }
        var bytes = Array(utf8[..<first])
        bytes.reserveCapacity(utf8.count)
        var startsWord = false
        var words = 0
        for byte in utf8[first...last] {
            if byte == underscore {
                startsWord = true
                continue
            }
            if startsWord || words == 0 { words += 1 }
            bytes.append(startsWord ? byte - 32 : byte)
            startsWord = false
        }
        guard words > 1 else { return String(decoding: utf8, as: UTF8.self) }
        bytes.append(contentsOf: utf8[(last + 1)...])
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Foundation's `capitalized` for one word; ASCII words (all of Emporium's keys) without
    /// its word-breaking machinery.
    private static func capitalized(_ word: Substring) -> String {
        guard word.utf8.allSatisfy({ $0 >= 0x61 && $0 <= 0x7A }) else { return word.capitalized }
        return word.prefix(1).uppercased() + word.dropFirst()
    }
}
