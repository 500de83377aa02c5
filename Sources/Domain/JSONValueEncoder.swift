import Foundation

/// Encodes a value straight into a ``JSONValue`` tree, by the rules of
/// ``EmporiumJSON/encoder()``: snake_case keys (a `[String: …]` dictionary's keys as they
/// are, as in `JSONEncoder`), ISO 8601 dates with milliseconds, URLs as text, `Data` as base64, non-finite
/// numbers refused.
///
/// Why: an event's `data` is kept as a tree. Encoding a payload to bytes and parsing those
/// back into the tree was one of the JSON passes issue 15's profile found in every event.
package struct JSONValueEncoder: Sendable {
    package init() {}

    /// The tree of `value`; throws the `EncodingError` `JSONEncoder` would.
    package func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        try TreeEncoder.box(value, codingPath: [])
    }
}

/// `[String: Value]`, encoded with its keys as they are: `JSONEncoder` does not apply its
/// key strategy to a dictionary's keys, only to a type's coding keys.
private protocol StringKeyedEncodable {
    func treeMembers(codingPath: [any CodingKey]) throws -> [String: JSONValue]
}

extension Dictionary: StringKeyedEncodable where Key == String, Value: Encodable {
    fileprivate func treeMembers(codingPath: [any CodingKey]) throws -> [String: JSONValue] {
        var members: [String: JSONValue] = [:]
        members.reserveCapacity(count)
        for (name, member) in self {
            members[name] = try TreeEncoder.box(member, codingPath: codingPath + [TreeKey(name)])
        }
        return members
    }
}

/// A container's place in the tree while it is being filled: containers are handed out
/// before their contents are written, so they hold references that are resolved at the end.
private enum Slot {
    case value(JSONValue)
    case object(ObjectBox)
    case array(ArrayBox)
    case encoder(TreeEncoder)

    var resolved: JSONValue {
        switch self {
        case .value(let value): value
        case .object(let box): .object(box.members.mapValues(\.resolved))
        case .array(let box): .array(box.elements.map(\.resolved))
        case .encoder(let encoder): encoder.resolved
        }
    }
}

private final class ObjectBox {
    var members: [String: Slot] = [:]
}

private final class ArrayBox {
    var elements: [Slot] = []
}

private final class TreeEncoder: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// What was encoded; nothing yet is an empty object, as in `JSONEncoder`.
    var slot: Slot?

    init(codingPath: [any CodingKey]) { self.codingPath = codingPath }

    var resolved: JSONValue { slot?.resolved ?? .object([:]) }

    /// The tree of `value`: the types `JSONEncoder` treats specially, then `value`'s own
    /// `encode(to:)`.
    static func box<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> JSONValue {
        // Type comparisons, not `as?` casts: this runs for every value of every event.
        if T.self == JSONValue.self, let tree = value as? JSONValue { return tree }
        if T.self == Date.self, let date = value as? Date { return .string(EmporiumJSON.formatDate(date)) }
        if T.self == URL.self, let url = value as? URL { return .string(url.absoluteString) }
        if T.self == Data.self, let data = value as? Data { return .string(data.base64EncodedString()) }
        if let dictionary = value as? any StringKeyedEncodable { return .object(try dictionary.treeMembers(codingPath: codingPath)) }
        let encoder = TreeEncoder(codingPath: codingPath)
        try value.encode(to: encoder)
        return encoder.resolved
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let box: ObjectBox
        if case .object(let existing) = slot {
            box = existing
        } else {
            box = ObjectBox()
            slot = .object(box)
        }
        return KeyedEncodingContainer(TreeKeyedContainer<Key>(box: box, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let box: ArrayBox
        if case .array(let existing) = slot {
            box = existing
        } else {
            box = ArrayBox()
            slot = .array(box)
        }
        return TreeUnkeyedContainer(box: box, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { TreeSingleValueContainer(encoder: self) }
}

/// A double or float as a tree number; NaN and infinity are `invalidValue`, as in
/// `JSONEncoder` without a non-conforming float strategy.
private func finite(_ number: Double, _ original: Any, _ codingPath: [any CodingKey]) throws -> JSONValue {
    guard number.isFinite else {
        throw EncodingError.invalidValue(original, .init(codingPath: codingPath, debugDescription: "Unable to encode \(number) directly in JSON."))
    }
    return .double(number)
}

/// An integer as a tree number; one beyond `Int`'s range becomes a double, as JSON readers
/// other than Swift's would read it anyway.
private func integer<T: BinaryInteger>(_ number: T) -> JSONValue {
    if let exact = Int(exactly: number) { return .int(exact) }
    return .double(Double(number))
}

private struct TreeSingleValueContainer: SingleValueEncodingContainer {
    let encoder: TreeEncoder
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func set(_ value: JSONValue) { encoder.slot = .value(value) }

    mutating func encodeNil() { set(.null) }
    mutating func encode(_ value: Bool) { set(.bool(value)) }
    mutating func encode(_ value: String) { set(.string(value)) }
    mutating func encode(_ value: Double) throws { set(try finite(value, value, codingPath)) }
    mutating func encode(_ value: Float) throws { set(try finite(Double(value), value, codingPath)) }
    mutating func encode(_ value: Int) { set(.int(value)) }
    mutating func encode(_ value: Int8) { set(integer(value)) }
    mutating func encode(_ value: Int16) { set(integer(value)) }
    mutating func encode(_ value: Int32) { set(integer(value)) }
    mutating func encode(_ value: Int64) { set(integer(value)) }
    mutating func encode(_ value: UInt) { set(integer(value)) }
    mutating func encode(_ value: UInt8) { set(integer(value)) }
    mutating func encode(_ value: UInt16) { set(integer(value)) }
    mutating func encode(_ value: UInt32) { set(integer(value)) }
    mutating func encode(_ value: UInt64) { set(integer(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { set(try TreeEncoder.box(value, codingPath: codingPath)) }
}

private struct TreeKeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: ObjectBox
    let codingPath: [any CodingKey]

    private func name(_ key: Key) -> String { EmporiumJSON.snakeCase(fromCamelCase: key.stringValue) }
    private func set(_ value: JSONValue, _ key: Key) { box.members[name(key)] = .value(value) }

    mutating func encodeNil(forKey key: Key) { set(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) { set(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) { set(.string(value), key) }
    mutating func encode(_ value: Int, forKey key: Key) { set(.int(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { set(try finite(value, value, codingPath + [key]), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        set(try TreeEncoder.box(value, codingPath: codingPath + [key]), key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nested = ObjectBox()
        box.members[name(key)] = .object(nested)
        return KeyedEncodingContainer(TreeKeyedContainer<NestedKey>(box: nested, codingPath: codingPath + [key]))
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = ArrayBox()
        box.members[name(key)] = .array(nested)
        return TreeUnkeyedContainer(box: nested, codingPath: codingPath + [key])
    }
    mutating func superEncoder() -> any Encoder {
        let encoder = TreeEncoder(codingPath: codingPath + [TreeKey("super")])
        box.members["super"] = .encoder(encoder)
        return encoder
    }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let encoder = TreeEncoder(codingPath: codingPath + [key])
        box.members[name(key)] = .encoder(encoder)
        return encoder
    }
}

private struct TreeUnkeyedContainer: UnkeyedEncodingContainer {
    let box: ArrayBox
    let codingPath: [any CodingKey]
    var count: Int { box.elements.count }

    private var nextPath: [any CodingKey] { codingPath + [TreeKey(index: count)] }

    mutating func encodeNil() { box.elements.append(.value(.null)) }
    mutating func encode(_ value: Bool) { box.elements.append(.value(.bool(value))) }
    mutating func encode(_ value: String) { box.elements.append(.value(.string(value))) }
    mutating func encode(_ value: Int) { box.elements.append(.value(.int(value))) }
    mutating func encode(_ value: Double) throws { box.elements.append(.value(try finite(value, value, nextPath))) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        box.elements.append(.value(try TreeEncoder.box(value, codingPath: nextPath)))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = ObjectBox()
        let path = nextPath
        box.elements.append(.object(nested))
        return KeyedEncodingContainer(TreeKeyedContainer<NestedKey>(box: nested, codingPath: path))
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = ArrayBox()
        let path = nextPath
        box.elements.append(.array(nested))
        return TreeUnkeyedContainer(box: nested, codingPath: path)
    }
    mutating func superEncoder() -> any Encoder {
        let encoder = TreeEncoder(codingPath: nextPath)
        box.elements.append(.encoder(encoder))
        return encoder
    }
}
