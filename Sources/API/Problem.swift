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
            let (detail, field) = describe(error)
            let errors = field.map { [APIError.FieldError(field: $0, message: detail)] } ?? []
            return try problemResponse(
                status: .badRequest, detail: "the body is not valid JSON for this request: \(detail)", errors: errors, instance: request.uri.path)
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

    /// What went wrong and the field it concerns, named as the client wrote it: the decoder
    /// converts `first_name` to `firstName` on the way in, so the path is converted back.
    private func describe(_ error: DecodingError) -> (detail: String, field: String?) {
        func path(_ context: DecodingError.Context, then key: (any CodingKey)? = nil) -> String? {
            let keys = context.codingPath + (key.map { [$0] } ?? [])
            guard !keys.isEmpty else { return nil }
            return keys.map { $0.intValue.map(String.init) ?? Self.snakeCase($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let field = path(context, then: key)
            return ("missing field \(field ?? key.stringValue)", field)
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let field = path(context)
            return (field.map { "wrong type for field \($0)" } ?? "wrong type for the body", field)
        case .dataCorrupted(let context):
            let field = path(context)
            return (field.map { "invalid value for field \($0)" } ?? "malformed JSON", field)
        @unknown default: return ("malformed JSON", nil)
        }
    }

    /// `firstName` → `first_name`: the inverse of the decoder's `convertFromSnakeCase`.
    static func snakeCase(_ key: String) -> String {
        var result = ""
        for character in key {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

extension Request {
    /// Collects the body (bounded by the context's upload limit, else 413) and decodes it.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: AppRequestContext) async throws -> (T, [UInt8]) {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        let bytes = Array(buffer.readableBytesView)
        do {
            return (try context.requestDecoder.decode(T.self, from: Data(bytes)), bytes)
        } catch DecodingError.dataCorrupted(let corrupt) where corrupt.codingPath.isEmpty {
            // JSON Schema counts 280.0 and 1e3 as integers, Foundation's decoder does not: such
            // a body is read again with those numbers written as integers.
            if let normalized = Self.integralNumbersAsIntegers(in: bytes), let value = try? context.requestDecoder.decode(T.self, from: normalized) {
                return (value, bytes)
            }
            // Foundation reports a number that does not fit an integer field (1.5, 2^63) as
            // corrupt data at the root, without the field; every number in a request is a
            // whole one within Int64, so the first that is not names the field.
            guard let field = Self.fieldWithNonIntegerNumber(in: bytes) else { throw DecodingError.dataCorrupted(corrupt) }
            throw APIError.badRequest(
                "the body is not valid JSON for this request: invalid value for field \(field)",
                errors: [.init(field: field, message: "must be a whole number within the documented range")])
        }
    }

    /// The body with every number that is a whole one written as a float (`280.0`, `1e3`)
    /// rewritten as an integer, or nil when there is none (or the body is not JSON).
    static func integralNumbersAsIntegers(in bytes: [UInt8]) -> Data? {
        guard let root = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else { return nil }
        var changed = false
        func rewrite(_ value: Any) -> Any {
            switch value {
            case let object as [String: Any]: return object.mapValues(rewrite)
            case let array as [Any]: return array.map(rewrite)
            case is Bool, is String, is NSNull: return value
            case let number as NSNumber:
                // Only numbers written as floats, and only where a Double is exact (|n| ≤ 2^53):
                // an integer literal past Int64 stays as it was, and is refused.
                let text = number.stringValue.lowercased()
                guard text.contains(".") || text.contains("e"), abs(number.doubleValue) <= 9_007_199_254_740_992,
                    let whole = Int64(exactly: number.doubleValue)
                else { return value }
                changed = true
                return NSNumber(value: whole)
            default: return value
            }
        }
        let rewritten = rewrite(root)
        guard changed else { return nil }
        return try? JSONSerialization.data(withJSONObject: rewritten, options: [.fragmentsAllowed])
    }

    /// The dotted path of the first number in a JSON body that is not a whole number within
    /// Int64, or nil (also when the body is not JSON at all).
    static func fieldWithNonIntegerNumber(in bytes: [UInt8]) -> String? {
        guard let root = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else { return nil }
        func search(_ value: Any, _ path: [String]) -> String? {
            switch value {
            case let object as [String: Any]:
                for key in object.keys.sorted() {
                    if let found = search(object[key]!, path + [key]) { return found }
                }
                return nil
            case let array as [Any]:
                for (index, element) in array.enumerated() {
                    if let found = search(element, path + [String(index)]) { return found }
                }
                return nil
            case is Bool, is String, is NSNull:
                return nil
            case let number as NSNumber:
                return Int64(number.stringValue) == nil && !path.isEmpty ? path.joined(separator: ".") : nil
            default:
                return nil
            }
        }
        return search(root, [])
    }
}

extension KeyedDecodingContainer {
    /// The value at `key` when the key is present (an explicit `null` is a type error, as the
    /// contract has it); nil when it is absent.
    func decodeUnlessAbsent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        contains(key) ? try decode(type, forKey: key) : nil
    }
}
