import Domain
import Foundation
import Testing

/// JSONValue's own text reader and writer must read what JSONDecoder reads, the same way,
/// refuse what it refuses, and write what it reads back unchanged.
@Suite("JSON text without Foundation")
struct JSONTextTests {
    /// What Foundation's decoder makes of `text`, as EventEnvelope read bodies before.
    static func foundation(_ text: String) throws -> JSONValue {
        try EmporiumJSON.decoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static let valid = [
        #"{"id":"4B1C0B0E-1F6B-4C1A-9C47-2B1E4E0D6F10","type":"order.placed","data":{"lines":[{"product_id":"x","quantity":2}],"total_cents":12345},"schema_version":1}"#,
        #"  [ 1 , -2 , 0 , -0 , 3.5 , -0.25 , 1e2 , 1E-2 , 2.0 , 9223372036854775807 , 9223372036854775808 , -9223372036854775808 , 1.5e300 ]  "#,
        #"{"a":true,"b":false,"c":null,"d":[],"e":{},"f":[[[]]],"g":""}"#,
        #""quote \" backslash \\ slash \/ controls \b\f\n\r\t unicode \u00e9 \u20AC \ud83d\ude00 nul \u0000""#,
        "\"raw UTF-8: é € 😀 \u{2028}\"",
        #"{"dup":1,"dup":2}"#,
        "\t\n\r 42 \n",
        "null", "true", "-1.0", "0.1",
    ]

    static let invalid = [
        "", " ", "{", "[1 2]", #"{"a" 1}"#, #"{a:1}"#, "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "[1]x",
        "\"unterminated", "\"bad escape \\x\"", "\"short \\u12\"", "\"lone \\ud83d\"", "\"lone low \\ude00\"", "\"control \u{01}\"",
        "1e400", "NaN", "'single'",
    ]

    @Test("valid texts parse to the tree JSONDecoder makes of them: every kind, escapes, surrogate pairs, whole and fractional numbers, whitespace")
    func parsesAsFoundation() throws {
        for text in Self.valid {
            #expect(try JSONValue(parsing: Array(text.utf8)) == (try Self.foundation(text)), "\(text)")
        }
    }

    /// Taken by JSONDecoder, refused here: RFC 8259 has no trailing commas, and Emporium
    /// never writes them.
    static let lenientInFoundation = ["[1,]", #"{"a":1,}"#]

    @Test("invalid texts are refused, as JSONDecoder refuses them (trailing commas too, which it takes); so are invalid UTF-8 and nesting past the limit")
    func refusesAsFoundation() throws {
        for text in Self.lenientInFoundation {
            #expect(throws: DecodingError.self, "\(text)") { try JSONValue(parsing: Array(text.utf8)) }
        }
        for text in Self.invalid {
            #expect(throws: (any Error).self, "Foundation refuses \(text)") { try Self.foundation(text) }
            #expect(throws: DecodingError.self, "\(text)") { try JSONValue(parsing: Array(text.utf8)) }
        }
        #expect(throws: DecodingError.self) { try JSONValue(parsing: [0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: DecodingError.self) { try JSONValue(parsing: [0x22, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: JSONValue.maximumDepth + 1) + String(repeating: "]", count: JSONValue.maximumDepth + 1)
        #expect(throws: DecodingError.self) { try JSONValue(parsing: Array(deep.utf8)) }
        let allowed = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        #expect(throws: Never.self) { try JSONValue(parsing: Array(allowed.utf8)) }
    }

    @Test("written text parses back to the same tree, by this reader and by JSONDecoder, with keys in byte order")
    func writesWhatReadsBack() throws {
        for text in Self.valid {
            let tree = try JSONValue(parsing: Array(text.utf8))
            let written = tree.jsonBytes
            #expect(try JSONValue(parsing: written) == tree, "\(text)")
            #expect(try Self.foundation(String(decoding: written, as: UTF8.self)) == tree, "\(text)")
        }
        let tree = JSONValue.object(["b": .int(1), "a": .array([.double(0.5), .double(2), .null]), "B": .string("\u{1}\"\\"), "é": .bool(true)])
        #expect(String(decoding: tree.jsonBytes, as: UTF8.self) == #"{"B":"\u0001\"\\","a":[0.5,2,null],"b":1,"é":true}"#)
    }
}
