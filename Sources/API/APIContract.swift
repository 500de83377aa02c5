import Foundation
import Settings

/// The API contract: `Resources/openapi.json`, checked in as the source of truth. The server
/// serves it as is at `/api/v1/openapi.json`, renders `/docs` from it, refuses to start when
/// its routes differ from it, and `ContractTests` hold every schema rule in it against the
/// running server.
package struct APIContract: Sendable {
    /// The document's bytes, as checked in.
    package let bytes: Data
    /// The parsed document (a JSON object).
    private let root: [String: any Sendable]

    /// The document shipped with the API (a SwiftPM resource of this module).
    package static func bundled() throws -> APIContract {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json") else {
            throw ConfigurationError("the API's openapi.json resource is missing from the build")
        }
        return try APIContract(bytes: Data(contentsOf: url))
    }

    /// Parses `bytes`.
    package init(bytes: Data) throws {
        guard let root = try JSONSerialization.jsonObject(with: bytes) as? [String: any Sendable] else {
            throw ConfigurationError("openapi.json is not a JSON object")
        }
        self.bytes = bytes
        self.root = root
    }

    /// One operation of the document.
    package struct Operation: Sendable {
        package let method: String
        package let path: String
        package let summary: String
        package let tag: String
        /// Who may call it (`x-roles`): "public", "any signed-in user" or role names.
        package let roles: String
        /// The operation object itself.
        package let spec: [String: any Sendable]
        /// `METHOD /path`, as routes are compared.
        package var key: String { "\(method) \(path)" }
    }

    /// Every operation, in the document's tag order and then by path.
    package var operations: [Operation] {
        let paths = root["paths"] as? [String: [String: any Sendable]] ?? [:]
        let tags = (root["tags"] as? [[String: any Sendable]] ?? []).compactMap { $0["name"] as? String }
        let all = paths.flatMap { path, methods in
            methods.compactMap { method, value -> Operation? in
                guard let spec = value as? [String: any Sendable] else { return nil }
                return Operation(
                    method: method.uppercased(), path: path, summary: spec["summary"] as? String ?? "",
                    tag: (spec["tags"] as? [String])?.first ?? "", roles: spec["x-roles"] as? String ?? "public", spec: spec)
            }
        }
        return all.sorted {
            let left = tags.firstIndex(of: $0.tag) ?? tags.count, right = tags.firstIndex(of: $1.tag) ?? tags.count
            return (left, $0.path, $0.method) < (right, $1.path, $1.method)
        }
    }

    /// `components.schemas`, by name.
    package var schemas: [String: [String: any Sendable]] {
        ((root["components"] as? [String: any Sendable])?["schemas"] as? [String: [String: any Sendable]]) ?? [:]
    }

    /// Routes the router serves that the document lacks, and documented operations no route
    /// serves. Both empty means the document matches the code; `buildApplication` refuses to
    /// start otherwise.
    package func mismatches(served: Set<String>) -> (undocumented: [String], unrouted: [String]) {
        let documented = Set(operations.map(\.key))
        return (served.subtracting(documented).sorted(), documented.subtracting(served).sorted())
    }
}
