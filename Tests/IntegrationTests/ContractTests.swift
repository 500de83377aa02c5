import API
import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Operations
import TestSupport
import Testing

/// The checked-in `openapi.json` is the contract, and the handlers are written by hand: this
/// suite holds them to each other. For every request body field, query parameter and header
/// the document describes, it sends the edges of the document's rules (lengths in code
/// points, bounds, patterns, enums, item counts, required fields, wrong types) and a pool of
/// awkward strings, and asks the document (a JSON Schema evaluation of the same values) what
/// should happen: a value the document forbids must be refused (400 or 422) naming the field;
/// a value it allows must not be (the server may still say 401, 403, 404 or 409 for business
/// reasons, which the document's schemas do not describe).
@Suite("The API enforces exactly the request rules of openapi.json", .timeLimit(.minutes(8)))
struct ContractTests {
    @Test("every documented body field, query parameter and header rule is enforced, and nothing else is refused")
    func rulesMatchTheDocument() async throws {
        var options = Stack.Options()
        options.maxUnpaidOrders = 1_000
        try await Stack.apiOnly(options) { stack in
            let fixture = try await ContractFixture.make(stack)
            let contract = ContractSchema(document: try JSONSerialization.jsonObject(with: APIContract.bundled().bytes) as! [String: Any])
            var mismatches: [String] = []
            var checked = 0

            for operation in fixture.operations {
                let schema = try #require(contract.requestSchema(operation.method.rawValue, operation.template), "\(operation.template) has no body")
                let base = try await operation.body()
                // The untouched valid body is not refused, and neither is an unknown extra field.
                var withUnknownField = base
                withUnknownField["x_unknown"] = .int(1)
                for (label, body) in [("valid body", base), ("valid body with an unknown field", withUnknownField)] {
                    let result = try await operation.send(stack, body.json, extraHeaders: [:])
                    checked += 1
                    if result.isValidationError { mismatches.append("\(operation.label): the \(label) was refused: \(result)") }
                }
                for leaf in contract.leaves(of: schema) {
                    let known = operation.known[leaf.path] ?? []
                    var samples = contract.samples(for: leaf.schema, known: known)
                    if leaf.schema["properties"] != nil { samples = [.null, .string("x"), .int(1), .array([])] }
                    for sample in samples {
                        var body = try await operation.body()
                        body.remove(leaf.path)
                        body[leaf.path] = sample
                        let allowed = leaf.schema["properties"] == nil && contract.allows(sample, leaf.schema)
                        let result = try await operation.send(stack, body.json, extraHeaders: [:])
                        checked += 1
                        if let problem = result.mismatch(allowed: allowed, field: leaf.path) {
                            mismatches.append("\(operation.label) \(leaf.path) = \(sample): \(problem)")
                        }
                    }
                    var without = try await operation.body()
                    without.remove(leaf.path)
                    let result = try await operation.send(stack, without.json, extraHeaders: [:])
                    checked += 1
                    if let problem = result.mismatch(allowed: !leaf.required, field: leaf.path) {
                        mismatches.append("\(operation.label) without \(leaf.path): \(problem)")
                    }
                }
                for parameter in contract.parameters(operation.method.rawValue, operation.template) where parameter.location == "header" {
                    for sample in contract.samples(for: parameter.schema, known: []) {
                        guard case .string(let text) = sample, text.unicodeScalars.allSatisfy({ (0x20...0x7E).contains($0.value) }) else { continue }
                        let result = try await operation.send(stack, try await operation.body().json, extraHeaders: [parameter.name: text])
                        checked += 1
                        // HTTP drops a header value's leading and trailing spaces before anyone reads it.
                        let allowed = contract.allows(.string(text.trimmingCharacters(in: .whitespaces)), parameter.schema)
                        if let problem = result.mismatch(allowed: allowed, field: parameter.name) {
                            mismatches.append("\(operation.label) header \(parameter.name) = \(sample): \(problem)")
                        }
                    }
                }
            }

            for (template, path, token) in fixture.listings {
                for parameter in contract.parameters("GET", template) where parameter.location == "query" {
                    for sample in contract.samples(for: parameter.schema, known: []) where sample.isScalar {
                        let query = sample.queryText.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                        let result = try await stack.request(.get, "\(path)?\(parameter.name)=\(query)", token: token)
                        checked += 1
                        // A query string has no types: `7` is the integer 7 and `true` the boolean.
                        let allowed = contract.allows(sample.asQueryValue(for: parameter.schema), parameter.schema)
                        if let problem = ContractResult(result).mismatch(allowed: allowed, field: parameter.name) {
                            mismatches.append("GET \(template)?\(parameter.name)=\(sample): \(problem)")
                        }
                    }
                }
            }

            #expect(
                mismatches.isEmpty, "\(mismatches.count) of \(checked) requests disagree with openapi.json:\n\(mismatches.prefix(60).joined(separator: "\n"))")
            #expect(checked > 2_000, "only \(checked) requests were checked")
            print("contract: \(checked) requests checked against openapi.json, \(mismatches.count) disagree")
        }
    }

    @Test("the oracle itself: a schema rule the server does not enforce is reported")
    func oracleCatchesDrift() throws {
        // The document says 1…100; a server that took 101 would be caught by the comparison.
        let contract = ContractSchema(document: try JSONSerialization.jsonObject(with: APIContract.bundled().bytes) as! [String: Any])
        let cartItem = try #require(contract.requestSchema("POST", "/api/v1/cart/items"))
        let quantity = try #require(contract.leaves(of: cartItem).first { $0.path == "quantity" })
        #expect(contract.allows(.int(100), quantity.schema))
        #expect(!contract.allows(.int(101), quantity.schema))
        #expect(!contract.allows(.number("1.5"), quantity.schema))
        #expect(!contract.allows(.string("1"), quantity.schema))
        let accepted = ContractResult(status: .created, body: "{}")
        #expect(accepted.mismatch(allowed: false, field: "quantity") != nil)
        let refusedOther = ContractResult(status: .unprocessableContent, body: #"{"detail":"x","errors":[{"field":"product_id","message":"m"}]}"#)
        #expect(refusedOther.mismatch(allowed: false, field: "quantity") != nil)
        #expect(refusedOther.mismatch(allowed: true, field: "quantity") == nil)
    }
}

extension Sample {
    var isScalar: Bool {
        if case .array = self { return false }
        if case .null = self { return false }
        return true
    }

    /// How a query value reads against its schema: text that is a number or a boolean is one.
    func asQueryValue(for schema: [String: Any]) -> Sample {
        let text = queryText
        let type = schema["type"] as? String
        // A query string carries an integer as its plain literal (OpenAPI's form style
        // serializes 1 as `1`); `1.0` in a query is text, not the integer 1.
        if type == "integer", text.contains(".") || text.lowercased().contains("e") { return .string(text) }
        if type == "integer" || type == "number" {
            return Decimal(string: text) != nil && text.allSatisfy({ $0.isNumber || $0 == "-" || $0 == "." }) ? .number(text) : .string(text)
        }
        if type == "boolean" { return text == "true" ? .bool(true) : text == "false" ? .bool(false) : .string(text) }
        return .string(text)
    }
}

/// The server's answer, read as the contract test needs it.
struct ContractResult: CustomStringConvertible {
    let status: HTTPResponse.Status
    let body: String

    init(status: HTTPResponse.Status, body: String) {
        self.status = status
        self.body = body
    }

    init(_ result: Stack.HTTPResult) { self.init(status: result.status, body: result.body) }

    /// 400 and 422, and 428 (Precondition Required: a product update without its version,
    /// which may come as the `version` field or an If-Match header).
    var isValidationError: Bool { status == .badRequest || status == .unprocessableContent || status == .preconditionRequired }

    /// True when the problem body names `field` (its `errors`, or the `detail` sentence).
    func names(_ field: String) -> Bool {
        guard let problem = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else { return false }
        let leaf = String(field.split(separator: ".").last ?? "")
        let fields = (problem["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
        return fields.contains { $0 == field || $0 == leaf || $0.hasSuffix("." + leaf) || $0.hasPrefix(field + ".") }
            || (problem["detail"] as? String ?? "").contains(field)
    }

    /// Why this answer disagrees with the document, or nil when it agrees.
    func mismatch(allowed: Bool, field: String) -> String? {
        if allowed, isValidationError, names(field) { return "the document allows it, the server refused it: \(self)" }
        if !allowed, !(isValidationError && names(field)) { return "the document forbids it, the server answered \(self)" }
        return nil
    }

    var description: String { "\(status.code) \(body.prefix(300))" }
}
