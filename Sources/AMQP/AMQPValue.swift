/// A value in an AMQP field table: queue arguments and message headers.
public enum AMQPValue: Sendable, Hashable, CustomStringConvertible {
    /// UTF-8 text (AMQP long string).
    case string(String)
    /// A signed integer; sent as a 64-bit field.
    case int(Int64)
    /// A boolean.
    case bool(Bool)
    /// A 64-bit float.
    case double(Double)
    /// A field array (e.g. `x-death`).
    case array([AMQPValue])
    /// A nested table.
    case table([String: AMQPValue])
    /// No value.
    case void

    public var description: String {
        switch self {
        case .string(let value): value
        case .int(let value): String(value)
        case .bool(let value): String(value)
        case .double(let value): String(value)
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .table(let table): "{" + table.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .void: "void"
        }
    }

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let value) = self { value } else { nil } }
    /// The integer, if this is one.
    public var intValue: Int64? { if case .int(let value) = self { value } else { nil } }
}

/// A field table: header or argument names to values.
public typealias AMQPTable = [String: AMQPValue]

extension AMQPValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
