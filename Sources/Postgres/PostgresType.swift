/// A PostgreSQL type, identified by its OID (`pg_type.oid`).
public struct PostgresType: Hashable, Sendable, CustomStringConvertible {
    /// The type's OID.
    public let oid: UInt32
    /// Wraps a raw OID.
    public init(oid: UInt32) { self.oid = oid }

    /// `unknown` (OID 0).
    public static let unknown = PostgresType(oid: 0)
    /// `bool` (OID 16).
    public static let bool = PostgresType(oid: 16)
    /// `bytea` (OID 17).
    public static let bytea = PostgresType(oid: 17)
    /// `name` (OID 19).
    public static let name = PostgresType(oid: 19)
    /// `int8` (OID 20).
    public static let int8 = PostgresType(oid: 20)
    /// `int2` (OID 21).
    public static let int2 = PostgresType(oid: 21)
    /// `int4` (OID 23).
    public static let int4 = PostgresType(oid: 23)
    /// `text` (OID 25).
    public static let text = PostgresType(oid: 25)
    /// `oid` (OID 26).
    public static let oidType = PostgresType(oid: 26)
    /// `json` (OID 114).
    public static let json = PostgresType(oid: 114)
    /// `float4` (OID 700).
    public static let float4 = PostgresType(oid: 700)
    /// `float8` (OID 701).
    public static let float8 = PostgresType(oid: 701)
    /// `bpchar` (OID 1042).
    public static let bpchar = PostgresType(oid: 1042)
    /// `varchar` (OID 1043).
    public static let varchar = PostgresType(oid: 1043)
    /// `date` (OID 1082).
    public static let date = PostgresType(oid: 1082)
    /// `timestamp` (OID 1114).
    public static let timestamp = PostgresType(oid: 1114)
    /// `timestamptz` (OID 1184).
    public static let timestamptz = PostgresType(oid: 1184)
    /// `numeric` (OID 1700).
    public static let numeric = PostgresType(oid: 1700)
    /// `uuid` (OID 2950).
    public static let uuid = PostgresType(oid: 2950)
    /// `jsonb` (OID 3802).
    public static let jsonb = PostgresType(oid: 3802)

    /// `bool[]` (OID 1000).
    public static let boolArray = PostgresType(oid: 1000)
    /// `int2[]` (OID 1005).
    public static let int2Array = PostgresType(oid: 1005)
    /// `int4[]` (OID 1007).
    public static let int4Array = PostgresType(oid: 1007)
    /// `text[]` (OID 1009).
    public static let textArray = PostgresType(oid: 1009)
    /// `varchar[]` (OID 1015).
    public static let varcharArray = PostgresType(oid: 1015)
    /// `int8[]` (OID 1016).
    public static let int8Array = PostgresType(oid: 1016)
    /// `float4[]` (OID 1021).
    public static let float4Array = PostgresType(oid: 1021)
    /// `float8[]` (OID 1022).
    public static let float8Array = PostgresType(oid: 1022)
    /// `timestamptz[]` (OID 1185).
    public static let timestamptzArray = PostgresType(oid: 1185)
    /// `numeric[]` (OID 1231).
    public static let numericArray = PostgresType(oid: 1231)
    /// `uuid[]` (OID 2951).
    public static let uuidArray = PostgresType(oid: 2951)

    /// The element type of a one-dimensional array type this module knows, else `nil`.
    public var arrayElement: PostgresType? {
        switch self {
        case .boolArray: .bool
        case .int2Array: .int2
        case .int4Array: .int4
        case .int8Array: .int8
        case .textArray: .text
        case .varcharArray: .varchar
        case .float4Array: .float4
        case .float8Array: .float8
        case .numericArray: .numeric
        case .timestamptzArray: .timestamptz
        case .uuidArray: .uuid
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .bool: "bool"
        case .bytea: "bytea"
        case .int2: "int2"
        case .int4: "int4"
        case .int8: "int8"
        case .text: "text"
        case .varchar: "varchar"
        case .json: "json"
        case .jsonb: "jsonb"
        case .float4: "float4"
        case .float8: "float8"
        case .numeric: "numeric"
        case .uuid: "uuid"
        case .date: "date"
        case .timestamp: "timestamp"
        case .timestamptz: "timestamptz"
        default: arrayElement.map { "\($0)[]" } ?? "oid \(oid)"
        }
    }
}
