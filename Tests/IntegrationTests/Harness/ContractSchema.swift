import Foundation

/// A JSON value a contract test sends, written out exactly (so numbers beyond `Int64` and
/// code points the serializer might normalise reach the server as they are).
enum Sample: CustomStringConvertible {
    case string(String)
    /// An integer or any other number, as its JSON text (e.g. `9223372036854775808`, `1.5`).
    case number(String)
    case bool(Bool)
    case null
    case array([Sample])

    static func int(_ value: Int) -> Sample { .number(String(value)) }

    /// The text of a string sample.
    var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The value as JSON text.
    var json: String {
        switch self {
        case .string(let text):
            let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        case .number(let text): return text
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map(\.json).joined(separator: ",") + "]"
        }
    }

    /// The value as a query-string value (before percent-encoding).
    var queryText: String {
        switch self {
        case .string(let text): return text
        default: return json
        }
    }

    var description: String {
        let text = json
        return text.count > 60 ? String(text.prefix(40)) + "…(\(text.count) chars)" : text
    }
}

/// A request body under construction: top-level and nested (`a.b`) fields set to samples.
struct SampleBody {
    var fields: [String: Sample] = [:]
    var objects: [String: SampleBody] = [:]

    subscript(path: String) -> Sample? {
        get {
            let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
            return parts.count == 1 ? fields[path] : objects[parts[0]]?[parts[1]]
        }
        set {
            let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
            if parts.count == 1 {
                fields[path] = newValue
            } else {
                var object = objects[parts[0]] ?? SampleBody()
                object[parts[1]] = newValue
                objects[parts[0]] = object
            }
        }
    }

    /// Removes a field (nested with `a.b`).
    mutating func remove(_ path: String) {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        if parts.count == 1 {
            fields[path] = nil
            objects[path] = nil
        } else {
            objects[parts[0]]?.remove(parts[1])
        }
    }

    var json: String {
        let members = fields.map { "\(Sample.string($0.key).json):\($0.value.json)" } + objects.map { "\(Sample.string($0.key).json):\($0.value.json)" }
        return "{" + members.sorted().joined(separator: ",") + "}"
    }
}

/// The JSON Schema subset `openapi.json` uses for requests (`type`, `enum`, `const`,
/// `minLength`/`maxLength` in code points, `pattern`, `minimum`/`maximum`, `maxItems`,
/// `items`, `allOf`, `anyOf`, `not`, `$ref`), evaluated as a validator would: the oracle
/// the contract test holds the server to.
struct ContractSchema {
    let document: [String: Any]

    /// The schema with `$ref` and `allOf` resolved into one object schema.
    func resolve(_ schema: [String: Any]) -> [String: Any] {
        if let reference = schema["$ref"] as? String {
            let name = String(reference.split(separator: "/").last!)
            let schemas = (document["components"] as! [String: Any])["schemas"] as! [String: Any]
            var resolved = resolve(schemas[name] as! [String: Any])
            for (key, value) in schema where key != "$ref" { resolved[key] = value }
            return resolved
        }
        guard let parts = schema["allOf"] as? [[String: Any]] else { return schema }
        var merged: [String: Any] = ["type": "object"]
        var properties: [String: Any] = [:]
        var required: [String] = []
        for part in parts.map(resolve) {
            properties.merge(part["properties"] as? [String: Any] ?? [:]) { $1 }
            required += part["required"] as? [String] ?? []
        }
        merged["properties"] = properties
        merged["required"] = required
        return merged
    }

    /// The request body schema of an operation, resolved.
    func requestSchema(_ method: String, _ path: String) -> [String: Any]? {
        let paths = document["paths"] as! [String: Any]
        guard let operation = (paths[path] as? [String: Any])?[method.lowercased()] as? [String: Any],
            let body = operation["requestBody"] as? [String: Any],
            let content = (body["content"] as? [String: Any])?["application/json"] as? [String: Any]
        else { return nil }
        return resolve(content["schema"] as! [String: Any])
    }

    /// Query and header parameters of an operation: (where, name, schema, required).
    func parameters(_ method: String, _ path: String) -> [(location: String, name: String, schema: [String: Any], required: Bool)] {
        let paths = document["paths"] as! [String: Any]
        let operation = (paths[path] as? [String: Any])?[method.lowercased()] as? [String: Any] ?? [:]
        return (operation["parameters"] as? [[String: Any]] ?? []).compactMap { parameter in
            guard let location = parameter["in"] as? String, location != "path" else { return nil }
            return (location, parameter["name"] as! String, resolve(parameter["schema"] as? [String: Any] ?? [:]), parameter["required"] as? Bool ?? false)
        }
    }

    /// Every leaf property of an object schema (objects' own properties as `a.b`), with its
    /// schema and whether it is required.
    func leaves(of schema: [String: Any], prefix: String = "") -> [(path: String, schema: [String: Any], required: Bool)] {
        let required = Set(schema["required"] as? [String] ?? [])
        var result: [(String, [String: Any], Bool)] = []
        for (name, raw) in (schema["properties"] as? [String: Any] ?? [:]).sorted(by: { $0.key < $1.key }) {
            let property = resolve(raw as! [String: Any])
            let path = prefix + name
            if property["properties"] != nil {
                result.append((path, property, required.contains(name)))
                result += leaves(of: property, prefix: path + ".")
            } else {
                result.append((path, property, required.contains(name)))
            }
        }
        return result
    }

    /// The types a schema admits (`anyOf` branches included).
    private func types(_ schema: [String: Any]) -> Set<String> {
        if let anyOf = schema["anyOf"] as? [[String: Any]] { return anyOf.map(resolve).reduce(into: []) { $0.formUnion(types($1)) } }
        if let type = schema["type"] as? String { return [type] }
        if let types = schema["type"] as? [String] { return Set(types) }
        return ["string", "number", "integer", "boolean", "null", "array", "object"]
    }

    /// True when a validator following the document accepts `value` for `schema`.
    func allows(_ value: Sample, _ schema: [String: Any]) -> Bool {
        let schema = resolve(schema)
        if let anyOf = schema["anyOf"] as? [[String: Any]] { return anyOf.contains { allows(value, $0) } }
        if let not = schema["not"] as? [String: Any], allows(value, not) { return false }
        if let allowed = schema["enum"] as? [String] {
            guard case .string(let text) = value, allowed.contains(text) else { return false }
        }
        if let constant = schema["const"] as? String {
            guard case .string(let text) = value, text == constant else { return false }
        }
        let types = types(schema)
        switch value {
        case .null: return types.contains("null")
        case .bool: return types.contains("boolean")
        case .number(let text):
            guard let number = Decimal(string: text) else { return false }
            // As JSON Schema counts: 1.0 and 1e0 are integers, 1.5 is not.
            var rounded = number
            var copy = number
            NSDecimalRound(&rounded, &copy, 0, .plain)
            let isInteger = rounded == number
            guard types.contains("number") || (types.contains("integer") && isInteger) else { return false }
            if let minimum = (schema["minimum"] as? NSNumber).flatMap(Self.exact), number < minimum { return false }
            if let maximum = (schema["maximum"] as? NSNumber).flatMap(Self.exact), number > maximum { return false }
            return true
        case .string(let text):
            guard types.contains("string") else { return false }
            let length = text.unicodeScalars.count
            if let minimum = schema["minLength"] as? Int, length < minimum { return false }
            if let maximum = schema["maxLength"] as? Int, length > maximum { return false }
            if let pattern = schema["pattern"] as? String, !Self.matches(pattern, text) { return false }
            return true
        case .array(let items):
            guard types.contains("array") else { return false }
            if let maximum = schema["maxItems"] as? Int, items.count > maximum { return false }
            if let itemSchema = schema["items"] as? [String: Any] { return items.allSatisfy { allows($0, itemSchema) } }
            return true
        }
    }

    /// ECMA-262 style search, as JSON Schema's `pattern` (the document's patterns anchor
    /// themselves). ICU's `$` also matches before a final line terminator (`\n`, `\u{85}`,
    /// `\u{2028}`); ECMA's only at the very end, so a closing `$` becomes `\z`.
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let pattern = pattern.hasSuffix("$") && !pattern.hasSuffix("\\$") ? String(pattern.dropLast()) + "\\z" : pattern
        let regex = try! NSRegularExpression(pattern: pattern)
        return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// Values to try against a property: the edges of its own rules (lengths, bounds, items),
    /// wrong types, and a pool of awkward strings. The document decides which should pass.
    func samples(for schema: [String: Any], known: [Sample]) -> [Sample] {
        let schema = resolve(schema)
        if let branches = schema["anyOf"] as? [[String: Any]] { return branches.flatMap { self.samples(for: $0, known: known) } }
        let types = types(schema)
        var samples: [Sample] = [.null, .bool(true), .int(7), .number("1.5"), .string("x")]
        if types.contains("string") {
            if schema["format"] as? String == "uuid" {
                // References: real ids only (a made-up one is the business rule "not found"),
                // and shapes that are not ids at all.
                let shapes = ["", "not-a-uuid", "00000000-0000-0000-0000-00000000000", "00000000-0000-0000-0000-0000000000000", "{\(UUID())}"]
                return samples + known + shapes.map(Sample.string)
            }
            let pool = Self.stringPool + ((schema["enum"] as? [String]) ?? []).flatMap { [$0, $0.lowercased(), $0 + " "] }
            samples += pool.map(Sample.string)
            // The length edges, grown from strings the document accepts so only the length differs.
            let limits = [schema["minLength"] as? Int, schema["maxLength"] as? Int, Self.patternLength(schema["pattern"] as? String)].compactMap { $0 }
            let seeds = pool.filter { allows(.string($0), schema) } + known.compactMap(\.stringValue)
            for limit in limits {
                for seed in seeds.prefix(3) where seed.unicodeScalars.count <= limit + 1 {
                    for length in [limit - 1, limit, limit + 1] where length >= 0 && length >= seed.unicodeScalars.count {
                        samples.append(.string(seed + String(repeating: Self.padding(for: seed), count: length - seed.unicodeScalars.count)))
                    }
                }
            }
        }
        if types.contains("integer") || types.contains("number") {
            for bound in [schema["minimum"], schema["maximum"]].compactMap({ $0 as? NSNumber }) {
                guard let value = Self.exact(bound) else { continue }
                samples += [value - 1, value, value + 1].map { Sample.number("\($0)") }
            }
            samples += [.int(0), .int(-1), .int(1), .number("1.0"), .number("1e0"), .string("1")]
        }
        if types.contains("array"), let itemSchema = schema["items"] as? [String: Any] {
            let itemSamples = self.samples(for: itemSchema, known: known)
            let good = itemSamples.first { allows($0, itemSchema) }
            let bad = itemSamples.filter { $0.stringValue != nil && !allows($0, itemSchema) }.prefix(6)
            samples += [.array([]), .array([.null])] + bad.map { Sample.array([$0]) }
            if let good {
                let maximum = schema["maxItems"] as? Int ?? 3
                samples += [.array(Array(repeating: good, count: maximum)), .array(Array(repeating: good, count: maximum + 1))]
            }
        }
        return samples + known
    }

    /// A bound exactly as written (`decimalValue` goes through a Double and rounds 2^63 - 1 up).
    static func exact(_ number: NSNumber) -> Decimal? { Decimal(string: number.stringValue) }

    /// The length a pattern like `^[A-Z]{2}$` or `^[a-z]{1,64}$` allows at most.
    private static func patternLength(_ pattern: String?) -> Int? {
        guard let pattern, let range = pattern.range(of: #"\{(\d+,)?(\d+)\}\$$"#, options: .regularExpression) else { return nil }
        return Int(pattern[range].split(whereSeparator: { !$0.isNumber }).last!)
    }

    /// What to grow a seed with: a character of its own kind, so a code stays a code.
    private static func padding(for seed: String) -> String {
        if let last = seed.last, last.isUppercase { return "Z" }
        if let last = seed.last, last.isNumber { return "7" }
        return "a"
    }

    /// Strings that break naive validators: blanks, control characters, NUL, non-ASCII,
    /// combining marks, look-alike separators, and well-formed values of each kind.
    static let stringPool: [String] = [
        "", " ", "\t", "   ", "a", "A", "ab", "a b", " a ", "a\nb", "a\rb", "a\tb", "a\u{0}b", "\u{85}", "a\u{2028}b", "a\u{7F}b",
        "ä", "é\u{301}", "日本", "💳", "DE", "de", "D", "DEU", "EUR", "eur", "EURO", "12", "12345678", "123456789012",
        "password", "Password1", "correct horse battery", "a.b+c@shop.example.com", "a@b", "a@b.", "a b@c.de", "ä@c.de",
        "https://cdn.example.com/a.png", "http://x.y:8080/p?q=1", "ftp://x.y/a", "https://a b/c", "javascript:alert(1)",
        "tok_visa", "tok-visa", "manual", "pm_card_visa", "a-b", "a_b", "a.b", "a/b", "SKU-1.2_3", "slug-ok", "Slug",
        "'; DROP TABLE orders; --",
    ]
}
