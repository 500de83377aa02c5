import Foundation

/// A Swift value that can be bound as a statement parameter.
///
/// Values travel in PostgreSQL's text format with an explicit type OID, so the server parses
/// them as data: a parameter can never change the statement's meaning.
public protocol PostgresEncodable: Sendable {
    /// The parameter's type, sent with the statement.
    static var postgresType: PostgresType { get }
    /// The value in PostgreSQL's text format, or `nil` for NULL.
    var postgresText: String? { get }
}

/// A Swift type that a column value can be decoded into.
public protocol PostgresDecodable: Sendable {
    /// Decodes the text-format value `text` of a column of type `type`; `nil` text is NULL.
    /// Throws a ``PostgresError`` with code `typeMismatch` or `unexpectedNull`.
    static func decode(_ text: String?, type: PostgresType, column: String) throws -> Self
}

/// A type usable as an element of a bound or decoded one-dimensional array.
public protocol PostgresArrayElement: PostgresEncodable, PostgresDecodable {
    /// The array type whose elements are of this type (e.g. `int8[]` for `Int`).
    static var postgresArrayType: PostgresType { get }
}

extension PostgresDecodable {
    static func mismatch(_ type: PostgresType, column: String, text: String? = nil) -> PostgresError {
        PostgresError(
            code: .typeMismatch,
            message: "column \"\(column)\" of type \(type) cannot be decoded as \(Self.self)"
                + (text.map { " (value \($0.prefix(40)))" } ?? ""),
            column: column)
    }

    static func nonNull(_ text: String?, column: String) throws -> String {
        guard let text else {
            throw PostgresError(
                code: .unexpectedNull,
                message: "column \"\(column)\" is NULL; decode it as \(Self.self)? instead",
                column: column)
        }
        return text
    }
}

// MARK: Optional

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresType { Wrapped.postgresType }
    public var postgresText: String? { self?.postgresText }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> Self {
        guard let text else { return nil }
        return try Wrapped.decode(text, type: type, column: column)
    }
}

/// An array of optionals binds NULL elements (`{"a",NULL}`), as `unnest` of a nullable column needs.
extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {
    public static var postgresArrayType: PostgresType { Wrapped.postgresArrayType }
}

// MARK: Integers

extension Int: PostgresArrayElement {
    public static var postgresType: PostgresType { .int8 }
    public static var postgresArrayType: PostgresType { .int8Array }
    public var postgresText: String? { String(self) }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> Int {
        let text = try nonNull(text, column: column)
        guard [.int2, .int4, .int8, .oidType].contains(type) else { throw mismatch(type, column: column) }
        guard let value = Int(text) else { throw mismatch(type, column: column, text: text) }
        return value
    }
}

extension Int32: PostgresArrayElement {
    public static var postgresType: PostgresType { .int4 }
    public static var postgresArrayType: PostgresType { .int4Array }
    public var postgresText: String? { String(self) }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> Int32 {
        let text = try nonNull(text, column: column)
        guard [.int2, .int4].contains(type), let value = Int32(text) else {
            throw mismatch(type, column: column, text: text)
        }
        return value
    }
}

// MARK: Text

extension String: PostgresArrayElement {
    public static var postgresType: PostgresType { .text }
    public static var postgresArrayType: PostgresType { .textArray }
    public var postgresText: String? { self }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> String {
        let text = try nonNull(text, column: column)
        // Text-like types plus a few whose text form is the natural string.
        guard [.text, .varchar, .bpchar, .name, .json, .jsonb, .uuid, .numeric].contains(type) else {
            throw mismatch(type, column: column)
        }
        return text
    }
}

// MARK: Bool

extension Bool: PostgresArrayElement {
    public static var postgresType: PostgresType { .bool }
    public static var postgresArrayType: PostgresType { .boolArray }
    public var postgresText: String? { self ? "t" : "f" }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> Bool {
        let text = try nonNull(text, column: column)
        guard type == .bool else { throw mismatch(type, column: column) }
        switch text {
        case "t": return true
        case "f": return false
        default: throw mismatch(type, column: column, text: text)
        }
    }
}

// MARK: Double

extension Double: PostgresArrayElement {
    public static var postgresType: PostgresType { .float8 }
    public static var postgresArrayType: PostgresType { .float8Array }
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return "\(self)"  // shortest representation that round-trips
    }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> Double {
        let text = try nonNull(text, column: column)
        guard [.float4, .float8, .numeric, .int2, .int4, .int8].contains(type) else {
            throw mismatch(type, column: column)
        }
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            guard let value = Double(text) else { throw mismatch(type, column: column, text: text) }
            return value
        }
    }
}

// MARK: UUID

extension UUID: PostgresArrayElement {
    public static var postgresType: PostgresType { .uuid }
    public static var postgresArrayType: PostgresType { .uuidArray }
    public var postgresText: String? { PostgresUUIDText.format(self) }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> UUID {
        let text = try nonNull(text, column: column)
        guard [.uuid, .text, .varchar].contains(type), let value = PostgresUUIDText.parse(text) else {
            throw mismatch(type, column: column, text: text)
        }
        return value
    }
}

// MARK: Bytes

extension Data: PostgresEncodable, PostgresDecodable {
    public static var postgresType: PostgresType { .bytea }
    public var postgresText: String? {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(2 + count * 2)
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "x"))
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> Data {
        let text = try nonNull(text, column: column)
        guard type == .bytea else { throw mismatch(type, column: column) }
        // The connection asks for bytea_output = hex (the default since PostgreSQL 9.0).
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"),
            utf8.count % 2 == 0
        else { throw mismatch(type, column: column, text: text) }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var data = Data(capacity: (utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else {
                throw mismatch(type, column: column, text: text)
            }
            data.append(high << 4 | low)
            index += 2
        }
        return data
    }
}

// MARK: JSON

/// A JSON document bound as `jsonb` or decoded from `json`/`jsonb`, kept as its UTF-8 text.
public struct PostgresJSON: PostgresEncodable, PostgresDecodable, Hashable {
    /// The document's UTF-8 bytes.
    public var data: Data

    /// Wraps JSON text that is already encoded.
    public init(data: Data) { self.data = data }

    /// Encodes `value` with `encoder`.
    public init<T: Encodable>(encoding value: T, encoder: JSONEncoder = JSONEncoder()) throws {
        self.data = try encoder.encode(value)
    }

    /// Decodes the document as `T`.
    public func decode<T: Decodable>(as type: T.Type, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(T.self, from: data)
    }

    public static var postgresType: PostgresType { .jsonb }
    public var postgresText: String? { String(decoding: data, as: UTF8.self) }
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> PostgresJSON {
        let text = try nonNull(text, column: column)
        guard type == .json || type == .jsonb else { throw mismatch(type, column: column) }
        return PostgresJSON(data: Data(text.utf8))
    }
}

// MARK: Arrays

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresType: PostgresType { Element.postgresArrayType }
    // A closure, not `\.postgresText`: a key path in this generic context is built at run
    // time on every call (1% of all CPU per order in the bench's profile of 2026-12-06).
    public var postgresText: String? { PostgresArrayLiteral.encode(map { $0.postgresText }) }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement {
    public static func decode(_ text: String?, type: PostgresType, column: String) throws -> [Element] {
        let text = try nonNull(text, column: column)
        guard let elementType = type.arrayElement else { throw mismatch(type, column: column) }
        guard let items = PostgresArrayLiteral.parse(text) else {
            throw mismatch(type, column: column, text: text)
        }
        return try items.map { try Element.decode($0, type: elementType, column: column) }
    }
}

/// The text form of one-dimensional arrays: `{1,"a \"b\"",NULL}`.
enum PostgresArrayLiteral {
    static func encode(_ items: [String?]) -> String {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(2 + items.reduce(0) { $0 + 3 + ($1?.utf8.count ?? 4) })
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            guard let item else {
                out += "NULL".utf8
                continue
            }
            out.append(quote)
            // By UTF-8 byte, not Character: a quote followed by a combining mark is one
            // Character that equals neither `"` nor `\`, and would slip through unescaped. Both
            // are ASCII, and no byte of a multi-byte sequence is, so this escapes exactly them.
            for byte in item.utf8 {
                if byte == quote || byte == backslash { out.append(backslash) }
                out.append(byte)
            }
            out.append(quote)
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses a one-dimensional array literal; `nil` if it is not one.
    static func parse(_ text: String) -> [String?]? {
        let chars = Array(text.unicodeScalars)
        guard chars.first == "{", chars.last == "}" else { return nil }
        var items: [String?] = []
        var index = 1
        let end = chars.count - 1
        if index == end { return [] }
        while index <= end {
            var value = String.UnicodeScalarView()
            var quoted = false
            if chars[index] == "\"" {
                quoted = true
                index += 1
                while index < end, chars[index] != "\"" {
                    if chars[index] == "\\" { index += 1 }
                    guard index < end else { return nil }
                    value.append(chars[index])
                    index += 1
                }
                index += 1  // closing quote
            } else {
                while index < end, chars[index] != "," {
                    if chars[index] == "{" { return nil }  // multi-dimensional: unsupported
                    value.append(chars[index])
                    index += 1
                }
            }
            let string = String(value)
            items.append(!quoted && string == "NULL" ? nil : string)
            guard index <= end else { return nil }
            if index == end { break }
            guard chars[index] == "," else { return nil }
            index += 1
        }
        return items
    }
}

/// A UUID's text as PostgreSQL writes and reads it (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`),
/// without Foundation's `uuidString` and `UUID(uuidString:)`, which go through `sprintf` and
/// `sscanf` (0.6 and 0.9 µs an id here; every batch binds and reads dozens).
enum PostgresUUIDText {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Lower-case, with the four dashes.
    static func format(_ id: UUID) -> String {
        withUnsafeBytes(of: id.uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { text in
                var position = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    text[position] = digits[Int(byte >> 4)]
                    text[position + 1] = digits[Int(byte & 0x0F)]
                    position += 2
                }
                return position
            }
        }
    }

    /// The UUID in `text`: 32 hex digits in either case, grouped 8-4-4-4-12 by dashes, as
    /// `UUID(uuidString:)` takes them; nil for anything else.
    static func parse(_ text: String) -> UUID? {
        var text = text
        return text.withUTF8 { utf8 -> UUID? in
            guard utf8.count == 36 else { return nil }
            var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            let parsed = withUnsafeMutableBytes(of: &bytes) { out -> Bool in
                var position = 0
                for index in 0..<16 {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        guard utf8[position] == UInt8(ascii: "-") else { return false }
                        position += 1
                    }
                    guard let high = nibble(utf8[position]), let low = nibble(utf8[position + 1]) else { return false }
                    out[index] = high << 4 | low
                    position += 2
                }
                return true
            }
            return parsed ? UUID(uuid: bytes) : nil
        }
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
