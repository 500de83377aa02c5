import Foundation

/// JSON text to and from a ``JSONValue`` tree in one pass each, without Foundation's coders.
///
/// Why: every event is parsed once per consumer and written once per publish. Through
/// `JSONDecoder`, `JSONValue`'s `init(from:)` finds each value's kind by trying Bool, Int,
/// Double, String and array in turn, and every failed try builds a `DecodingError` with its
/// message; issue 15's profile put 14–29% of each worker's CPU in JSON.
extension JSONValue {
    /// Parses one JSON text (RFC 8259): objects, arrays, strings with every escape, numbers,
    /// `true`, `false`, `null`, surrounded by whitespace and nothing else; stricter than
    /// `JSONDecoder`, which also takes a trailing comma (Emporium never writes one). A number without
    /// fraction or exponent that fits `Int` is `.int`, as is a whole one that `JSONDecoder`
    /// would decode as `Int` (`1.0`, `1e2`); others are `.double`. Throws
    /// `DecodingError.dataCorrupted` for anything else, including invalid UTF-8, lone
    /// surrogates, non-finite numbers and nesting deeper than ``maximumDepth``.
    package init(parsing bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBufferPointer { buffer in
            var parser = JSONTextParser(bytes: buffer)
            parser.skipWhitespace()
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.index == buffer.count else { throw parser.corrupted("unexpected text after the JSON value") }
            return value
        }
    }

    /// How deeply arrays and objects may nest (`JSONDecoder`'s limit), so that hostile input
    /// cannot exhaust the stack.
    package static let maximumDepth = 512

    /// The value as compact JSON text, object keys in the order of their UTF-8 bytes (stable
    /// output, as `JSONEncoder`'s `.sortedKeys` gives); non-ASCII as UTF-8.
    package var jsonBytes: [UInt8] {
        var text: [UInt8] = []
        text.reserveCapacity(256)
        append(to: &text)
        return text
    }

    private func append(to text: inout [UInt8]) {
        switch self {
        case .null: text.append(contentsOf: "null".utf8)
        case .bool(let flag): text.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): text.append(contentsOf: String(number).utf8)
        case .double(let number):
            // Finite only: the encoder refuses NaN and infinity. A whole number is written
            // without `.0`, as `JSONEncoder` writes it.
            if let whole = Int(exactly: number) {
                text.append(contentsOf: String(whole).utf8)
            } else {
                text.append(contentsOf: number.description.utf8)
            }
        case .string(let string): Self.appendJSONString(string, to: &text)
        case .array(let elements):
            text.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { text.append(UInt8(ascii: ",")) }
                element.append(to: &text)
            }
            text.append(UInt8(ascii: "]"))
        case .object(let members):
            text.append(UInt8(ascii: "{"))
            for (position, member) in members.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }).enumerated() {
                if position > 0 { text.append(UInt8(ascii: ",")) }
                Self.appendJSONString(member.key, to: &text)
                text.append(UInt8(ascii: ":"))
                member.value.append(to: &text)
            }
            text.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped (RFC 8259 §7), every
    /// other character as its UTF-8 bytes. Shared with the log lines.
    package static func appendJSONString(_ string: String, to text: inout [UInt8]) {
        text.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): text.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): text.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\n"): text.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): text.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): text.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                text.append(contentsOf: #"\u00"#.utf8)
                text.append(contentsOf: CollectionOfOne(byte).hexEncoded.utf8)
            default: text.append(byte)
            }
        }
        text.append(UInt8(ascii: "\""))
    }
}

/// A recursive-descent reader over the bytes of one JSON text.
private struct JSONTextParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func corrupted(_ reason: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: [], debugDescription: "The given data was not valid JSON: \(reason) at byte \(index)."))
    }

    mutating func skipWhitespace() {
        // A switch, not `[…].contains`: this runs between every two tokens.
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard index < bytes.count else { throw corrupted("unexpected end of text") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw corrupted("unexpected character")
        }
    }

    /// `value`, if the text here is `word`.
    private mutating func literal(_ word: StaticString, _ value: JSONValue) throws -> JSONValue {
        let count = word.utf8CodeUnitCount
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
        guard index + count <= bytes.count, bytes[index..<(index + count)].elementsEqual(expected) else {
            throw corrupted("unexpected character")
        }
        index += count
        return value
    }

    private mutating func expect(_ byte: UInt8) throws {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { throw corrupted("expected '\(Character(Unicode.Scalar(byte)))'") }
        index += 1
    }

    /// True, past the byte, if the next non-space byte is `byte`.
    private mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func object(depth: Int) throws -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw corrupted("too deeply nested") }
        index += 1
        var members: [String: JSONValue] = [:]
        if consume(UInt8(ascii: "}")) { return .object(members) }
        repeat {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw corrupted("expected a key") }
            let key = try string()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            let member = try value(depth: depth)
            // A repeated key keeps its first value, as JSONDecoder does.
            if members[key] == nil { members[key] = member }
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: "}"))
        return .object(members)
    }

    private mutating func array(depth: Int) throws -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw corrupted("too deeply nested") }
        index += 1
        var elements: [JSONValue] = []
        if consume(UInt8(ascii: "]")) { return .array(elements) }
        repeat {
            skipWhitespace()
            elements.append(try value(depth: depth))
        } while consume(UInt8(ascii: ","))
        try expect(UInt8(ascii: "]"))
        return .array(elements)
    }

    /// A string, at its opening quote. Runs without escapes are taken as they are (validated
    /// as UTF-8); escapes are decoded, surrogate pairs joined.
    private mutating func string() throws -> String {
        index += 1
        var decoded: [UInt8] = []
        var runStart = index
        while true {
            guard index < bytes.count else { throw corrupted("unterminated string") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { break }
            if byte < 0x20 { throw corrupted("unescaped control character in a string") }
            if byte != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            decoded.append(contentsOf: bytes[runStart..<index])
            index += 1
            guard index < bytes.count else { throw corrupted("unterminated string") }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"): decoded.append(contentsOf: String(Character(try unicodeEscape())).utf8)
            default: throw corrupted("invalid escape")
            }
            runStart = index
        }
        let text: String?
        if decoded.isEmpty {
            text = String(validating: bytes[runStart..<index], as: UTF8.self)
        } else {
            decoded.append(contentsOf: bytes[runStart..<index])
            text = String(validating: decoded, as: UTF8.self)
        }
        index += 1
        guard let text else { throw corrupted("invalid UTF-8 in a string") }
        return text
    }

    /// The scalar of `\uXXXX` (after the `u`), with the low half of a surrogate pair.
    private mutating func unicodeEscape() throws -> Unicode.Scalar {
        let high = try hexQuad()
        if let scalar = Unicode.Scalar(high) { return scalar }
        guard (0xD800...0xDBFF).contains(high), index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
            bytes[index + 1] == UInt8(ascii: "u")
        else { throw corrupted("lone surrogate in a \\u escape") }
        index += 2
        let low = try hexQuad()
        guard (0xDC00...0xDFFF).contains(low), let scalar = Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)) else {
            throw corrupted("lone surrogate in a \\u escape")
        }
        return scalar
    }

    private mutating func hexQuad() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw corrupted("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw corrupted("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// A number by RFC 8259's grammar: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    private mutating func number() throws -> JSONValue {
        let start = index
        func digits() -> Int {
            let first = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index - first
        }
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        let integerStart = index
        guard digits() > 0 else { throw corrupted("invalid number") }
        guard bytes[integerStart] != UInt8(ascii: "0") || index - integerStart == 1 else { throw corrupted("leading zero in a number") }
        var isWhole = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            isWhole = false
            guard digits() > 0 else { throw corrupted("invalid number") }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            isWhole = false
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw corrupted("invalid number") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if isWhole, let whole = Int(text) { return .int(whole) }
        guard let number = Double(text), number.isFinite else { throw corrupted("number \(text) is out of range") }
        if let whole = Int(exactly: number) { return .int(whole) }
        return .double(number)
    }
}
