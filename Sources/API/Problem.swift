import Foundation
import HTTPCommon
import Hummingbird
import Logging
import Postgres

/// An error the API answers with an RFC 9457 `application/problem+json` body.
package struct APIError: HTTPResponseError, Sendable {
    /// A field that failed validation, listed in the problem's `errors`.
    package typealias FieldError = ProblemBody.FieldError

    package let status: HTTPResponse.Status
    /// One sentence for the client; never internal error text.
    package let detail: String
    /// Offending fields, for validation errors.
    package var errors: [FieldError] = []
    /// Extra headers (e.g. `Retry-After`).
    package var headers: HTTPFields = [:]

    package static func badRequest(_ detail: String, errors: [FieldError] = []) -> APIError { APIError(status: .badRequest, detail: detail, errors: errors) }
    package static func unauthorized(_ detail: String) -> APIError {
        APIError(status: .unauthorized, detail: detail, headers: [.wwwAuthenticate: "Bearer"])
    }
    package static func forbidden(_ detail: String) -> APIError { APIError(status: .forbidden, detail: detail) }
    package static func notFound(_ what: String) -> APIError { APIError(status: .notFound, detail: "\(what) not found") }
    package static func conflict(_ detail: String) -> APIError { APIError(status: .conflict, detail: detail) }
    package static func unprocessable(_ detail: String, errors: [FieldError] = []) -> APIError {
        APIError(status: .unprocessableContent, detail: detail, errors: errors)
    }
    package static func unavailable(_ detail: String) -> APIError {
        APIError(status: .serviceUnavailable, detail: detail, headers: [.retryAfter: "2"])
    }

    /// Validation failure for the listed fields.
    package static func invalid(_ errors: [(String, String)]) -> APIError {
        .unprocessable("the request has invalid fields", errors: errors.map { FieldError(field: $0.0, message: $0.1) })
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        try problemResponse(status: status, detail: detail, errors: errors, headers: headers, instance: request.uri.path)
    }
}

func problemResponse(status: HTTPResponse.Status, detail: String, errors: [APIError.FieldError] = [], headers: HTTPFields = [:], instance: String? = nil) throws
    -> Response
{
    try ProblemBody(status: status, detail: detail, instance: instance, errors: errors).response(headers: headers)
}

/// Turns every error into a problem response: ``APIError`` as it says, Hummingbird's own
/// errors (404, 413, …) with their status, a database or broker outage as 503, malformed
/// JSON as 400, and anything else as 500 with no internal detail (it is logged instead).
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPError {
            let detail = error.status == .notFound ? "no such resource" : (error.body ?? error.status.reasonPhrase)
            return try problemResponse(status: error.status, detail: detail, instance: request.uri.path)
        } catch let error as any HTTPResponseError {
            let detail = error.status == .contentTooLarge ? "the request body is larger than \(context.maxUploadSize / 1024) KiB" : error.status.reasonPhrase
            return try problemResponse(status: error.status, detail: detail, instance: request.uri.path)
        } catch let error as DecodingError {
            return try problemResponse(
                status: .badRequest, detail: "the body is not valid JSON for this request: \(describe(error))", instance: request.uri.path)
        } catch let error as PostgresError where error.isTransient {
            context.logger.warning("database unavailable", metadata: ["error": "\(error)"])
            return try problemResponse(
                status: .serviceUnavailable, detail: "the service is temporarily unavailable; retry shortly", headers: [.retryAfter: "2"],
                instance: request.uri.path)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return try problemResponse(status: .internalServerError, detail: "an internal error occurred", instance: request.uri.path)
        }
    }

    private func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing field \((path(context).isEmpty ? "" : path(context) + ".") + key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "wrong type for field \(path(context))"
        case .dataCorrupted(let context): return path(context).isEmpty ? "malformed JSON" : "invalid value for field \(path(context))"
        @unknown default: return "malformed JSON"
        }
    }
}

extension Request {
    /// Collects the body (bounded by the context's upload limit, else 413) and decodes it.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: AppRequestContext) async throws -> (T, [UInt8]) {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        let bytes = Array(buffer.readableBytesView)
        return (try context.requestDecoder.decode(T.self, from: Data(bytes)), bytes)
    }
}
