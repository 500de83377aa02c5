import Foundation
import Hummingbird

/// The one RFC 9457 `application/problem+json` body every Emporium HTTP server answers errors
/// with: the API's validation and outage errors, and `/ready` on the API and the workers.
package struct ProblemBody: Encodable, Sendable {
    /// A field that failed validation, listed in `errors`.
    package struct FieldError: Codable, Sendable, Equatable {
        package let field: String
        package let message: String
        package init(field: String, message: String) {
            self.field = field
            self.message = message
        }
    }

    package let type = "about:blank"
    package let title: String
    package let status: Int
    /// One sentence for the client; never internal error text.
    package let detail: String
    package let instance: String?
    /// Offending fields, for validation errors.
    package let errors: [FieldError]?
    /// Dependency results, for readiness.
    package let checks: [String: String]?

    package init(status: HTTPResponse.Status, detail: String, instance: String? = nil, errors: [FieldError] = [], checks: [String: String]? = nil) {
        self.title = status.reasonPhrase
        self.status = status.code
        self.detail = detail
        self.instance = instance
        self.errors = errors.isEmpty ? nil : errors
        self.checks = checks
    }

    /// This problem as a response with its status and `application/problem+json`.
    package func response(headers: HTTPFields = [:]) throws -> Response {
        try JSONResponse.make(HTTPResponse.Status(code: status), self, contentType: "application/problem+json", headers: headers)
    }
}
