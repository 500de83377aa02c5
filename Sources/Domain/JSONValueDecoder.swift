import Foundation

/// Decodes a typed value straight from a ``JSONValue`` tree, by the rules of
/// ``EmporiumJSON/decoder()``: snake_case keys (a `[String: …]` dictionary's keys as they
/// are, as in `JSONDecoder`), ISO 8601 dates with or without fractions, URLs as text, `Data` as base64.
///
/// Why: an event's `data` is already a parsed tree. Writing it back to bytes to run
/// `JSONDecoder` over them was most of a worker's JSON cost (issue 15's profile: 14% of the
/// stock worker's CPU in `EventEnvelope.payload(as:)`).
package struct JSONValueDecoder: Sendable {
    package init() {}

    /// The `T` that `value` describes; throws the `DecodingError` `JSONDecoder` would.
    package func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try TreeDecoder(value: value, codingPath: []).unbox(T.self)
    }
}

/// One node of the tree being decoded; also its single-value container.
private struct TreeDecoder: Decoder, SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: JSONValue].self) }
        return KeyedDecodingContainer(TreeKeyedContainer<Key>(members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else { throw mismatch([JSONValue].self) }
        return TreeUnkeyedContainer(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value == .null }
    func decode(_ type: Bool.Type) throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch(type) }
        return flag
    }
    func decode(_ type: String.Type) throws -> String {
        guard case .string(let text) = value else { throw mismatch(type) }
        return text
    }
    func decode(_ type: Double.Type) throws -> Double {
        switch value {
        case .double(let number): return number
        case .int(let number): return Double(number)
        default: throw mismatch(type)
        }
    }
    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }
    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try unbox(type) }

    /// `T` from this node: the types `JSONDecoder` treats specially first, then `T`'s own
    /// `init(from:)`. A `null` is for `T` to take or refuse (the primitives refuse it with
    /// `valueNotFound`, as in `JSONDecoder`).
    func unbox<T: Decodable>(_ type: T.Type) throws -> T {
        // A subtree is its own JSONValue: without this, JSONValue's init(from:) would probe
        // each node's kind by trying one type after another.
        if T.self == JSONValue.self { return try typed(value) }
        if T.self == Date.self {
            let text = try decode(String.self)
            guard let date = EmporiumJSON.parseDate(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "not an ISO 8601 date: \(text)"))
            }
            return try typed(date)
        }
        if T.self == URL.self {
            let text = try decode(String.self)
            guard let url = URL(string: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "Invalid URL string."))
            }
            return try typed(url)
        }
        if T.self == Data.self {
            guard let data = Data(base64Encoded: try decode(String.self)) else {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "Encountered Data is not valid Base64."))
            }
            return try typed(data)
        }
        if let dictionaryType = T.self as? any StringKeyedDecodable.Type {
            guard case .object(let members) = value else { throw mismatch(T.self) }
            return try typed(dictionaryType.init(members: members, codingPath: codingPath))
        }
        return try T(from: self)
    }

    /// `value` as `T`, which the caller has checked it is (no force cast, all the same).
    private func typed<T>(_ value: Any) throws -> T {
        guard let typed = value as? T else {
            throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath, debugDescription: "Decoded \(type(of: value)), not \(T.self)."))
        }
        return typed
    }

    /// An integer of type `T`, also from a whole-valued double; out of range is
    /// `dataCorrupted`, as in `JSONDecoder`.
    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        switch value {
        case .int(let number):
            if let exact = T(exactly: number) { return exact }
        case .double(let number):
            if let exact = T(exactly: number) { return exact }
        default:
            throw mismatch(type)
        }
        throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "Parsed JSON number <\(value)> does not fit in \(T.self)."))
    }

    /// Not the wanted kind: `valueNotFound` for a null, else `typeMismatch`, as in `JSONDecoder`.
    private func mismatch(_ type: Any.Type) -> DecodingError {
        if value == .null {
            return .valueNotFound(type, .init(codingPath: codingPath, debugDescription: "Expected \(type) value but found null instead."))
        }
        return .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "Expected to decode \(type) but found \(value.kindName) instead."))
    }
}

/// `[String: Value]`, decoded with its keys as they are: `JSONDecoder` does not apply its
/// key strategy to a dictionary's keys, only to a type's coding keys.
private protocol StringKeyedDecodable {
    init(members: [String: JSONValue], codingPath: [any CodingKey]) throws
}

extension Dictionary: StringKeyedDecodable where Key == String, Value: Decodable {
    fileprivate init(members: [String: JSONValue], codingPath: [any CodingKey]) throws {
        self.init(minimumCapacity: members.count)
        for (name, member) in members {
            self[name] = try TreeDecoder(value: member, codingPath: codingPath + [TreeKey(name)]).unbox(Value.self)
        }
    }
}

private struct TreeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    /// The object's members under their camelCase names.
    let members: [String: JSONValue]
    let codingPath: [any CodingKey]

    init(members: [String: JSONValue], codingPath: [any CodingKey]) {
        var converted: [String: JSONValue] = [:]
        converted.reserveCapacity(members.count)
        for (name, member) in members {
            // Two JSON keys that convert alike: one of them wins, as in `JSONDecoder`.
            let camel = EmporiumJSON.camelCase(fromSnakeCase: name)
            if converted[camel] == nil { converted[camel] = member }
        }
        self.members = converted
        self.codingPath = codingPath
    }

    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try member(key) == .null }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try node(key).unbox(type) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try node(key).decode(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try node(key).decode(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try node(key).decode(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try node(key).decode(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try node(key).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try node(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { TreeDecoder(value: members["super"] ?? .null, codingPath: codingPath + [TreeKey("super")]) }
    func superDecoder(forKey key: Key) throws -> any Decoder { TreeDecoder(value: members[key.stringValue] ?? .null, codingPath: codingPath + [key]) }

    private func member(_ key: Key) throws -> JSONValue {
        guard let found = members[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key, .init(codingPath: codingPath, debugDescription: "No value associated with key \(key.stringValue)."))
        }
        return found
    }
    private func node(_ key: Key) throws -> TreeDecoder { TreeDecoder(value: try member(key), codingPath: codingPath + [key]) }
}

private struct TreeUnkeyedContainer: UnkeyedDecodingContainer {
    let elements: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0

    init(elements: [JSONValue], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    mutating func decodeNil() throws -> Bool {
        guard try peek(JSONValue?.self) == .null else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let decoded = try TreeDecoder(value: try peek(type), codingPath: codingPath + [TreeKey(index: currentIndex)]).unbox(type)
        currentIndex += 1
        return decoded
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let nested = try TreeDecoder(value: try peek(type), codingPath: codingPath + [TreeKey(index: currentIndex)]).container(keyedBy: type)
        currentIndex += 1
        return nested
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let nested = try TreeDecoder(value: try peek([JSONValue].self), codingPath: codingPath + [TreeKey(index: currentIndex)]).unkeyedContainer()
        currentIndex += 1
        return nested
    }
    mutating func superDecoder() throws -> any Decoder {
        let decoder = TreeDecoder(value: try peek(JSONValue.self), codingPath: codingPath + [TreeKey(index: currentIndex)])
        currentIndex += 1
        return decoder
    }

    /// The next element; past the end is `valueNotFound`, as in `JSONDecoder`.
    private func peek(_ type: Any.Type) throws -> JSONValue {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type, .init(codingPath: codingPath + [TreeKey(index: currentIndex)], debugDescription: "Unkeyed container is at end."))
        }
        return elements[currentIndex]
    }
}

/// A coding key for array positions and `super`, in coding paths of errors.
struct TreeKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(_ name: String) {
        stringValue = name
        intValue = nil
    }
    init(index: Int) {
        stringValue = "Index \(index)"
        intValue = index
    }
    init?(stringValue: String) { self.init(stringValue) }
    init?(intValue: Int) { self.init(index: intValue) }
}

extension JSONValue {
    /// The JSON kind, for error messages.
    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .int, .double: "number"
        case .string: "a string"
        case .array: "an array"
        case .object: "a dictionary"
        }
    }
}
