import AsyncHTTPClient
import Foundation
import Logging
import Messaging
import NIOCore
import Units

/// An error Stripe answered with: a card it refused (402), or a request it will not carry out
/// as sent (400, 404). Both are final for the request; everything that may pass on a retry
/// (network failures, timeouts, 401, 409, 429, 5xx) is a `TransientFailure` instead.
package struct StripeRequestError: Error, CustomStringConvertible {
    /// The HTTP status Stripe answered with.
    package let status: Int
    /// Stripe's `error.type`, e.g. `card_error`, `invalid_request_error`.
    package let type: String?
    /// Stripe's `error.code`, e.g. `card_declined`, `resource_missing`.
    package let code: String?
    /// Stripe's `error.decline_code`, e.g. `insufficient_funds`.
    package let declineCode: String?
    /// Stripe's `error.message`: for operators, never for customers.
    package let message: String?

    /// The most specific code: the decline code of a card error, else the error code.
    package var bestCode: String { declineCode ?? code ?? (status == 402 ? "card_declined" : "invalid_request") }

    package var description: String { "Stripe refused the request (HTTP \(status), \(code ?? type ?? "no code")): \(message ?? "")" }
}

/// Stripe's REST API over HTTPS: form-encoded requests with the secret key, an
/// `Idempotency-Key` on every mutating call, a deadline on every call, and Stripe's answers
/// sorted into results, final refusals (``StripeRequestError``) and transient failures.
package struct StripeClient: Sendable {
    let settings: StripeSettings
    let http: HTTPClient

    /// Creates the client over `http` (the process's shared client unless a test gives one).
    package init(settings: StripeSettings, http: HTTPClient = .shared) {
        self.settings = settings
        self.http = http
    }

    /// `POST path` with `form`, under `idempotencyKey`: Stripe answers a repeated key with the
    /// first answer for 24 hours.
    package func post<T: Decodable>(_ path: String, _ form: [(String, String)], idempotencyKey: String, as _: T.Type) async throws -> T {
        var request = HTTPClientRequest(url: settings.apiBase + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Idempotency-Key", value: idempotencyKey)
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        return try await send(request, path: path, as: T.self)
    }

    /// `GET path?query`.
    package func get<T: Decodable>(_ path: String, query: [(String, String)] = [], as _: T.Type) async throws -> T {
        let url = settings.apiBase + path + (query.isEmpty ? "" : "?" + FormEncoding.encode(query))
        return try await send(HTTPClientRequest(url: url), path: path, as: T.self)
    }

    private func send<T: Decodable>(_ request: HTTPClientRequest, path: String, as _: T.Type) async throws -> T {
        var request = request
        request.headers.add(name: "Authorization", value: "Bearer \(settings.secretKey)")
        request.headers.add(name: "Stripe-Version", value: StripeSettings.apiVersion)
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .milliseconds(Int64(settings.timeout.wholeMilliseconds)))
            body = try await response.body.collect(upTo: 4 << 20)
        } catch {
            // Never echo the request: its headers hold the secret key.
            throw TransientFailure("Stripe unreachable (\(request.method.rawValue) \(path)): \(type(of: error)) \(String(describing: error).prefix(200))")
        }
        let status = Int(response.status.code)
        let data = Data(body.readableBytesView)
        guard (200..<300).contains(status) else {
            let detail = (try? JSONDecoder().decode(StripeErrorBody.self, from: data))?.error
            switch status {
            case 400, 402, 404:
                throw StripeRequestError(
                    status: status, type: detail?.type, code: detail?.code, declineCode: detail?.declineCode, message: detail?.message)
            default:
                // 401/403 (a wrong key: an operator's fix, then a replay), 409 (a concurrent
                // request with the same key), 429 and 5xx: retried with the same key.
                throw TransientFailure("Stripe answered \(status) to \(request.method.rawValue) \(path): \(detail?.message ?? "no message")")
            }
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw TransientFailure("Stripe's answer to \(path) could not be read: \(error)")
        }
    }
}

/// `application/x-www-form-urlencoded`, as Stripe takes it (`metadata[order_id]=…`).
package enum FormEncoding {
    private static let unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    /// `pairs` as a form body, in order.
    package static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { escape($0.0) + "=" + escape($0.1) }.joined(separator: "&")
    }

    private static func escape(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? "" }
}

struct StripeErrorBody: Decodable {
    struct Detail: Decodable {
        let type: String?
        let code: String?
        let declineCode: String?
        let message: String?
        enum CodingKeys: String, CodingKey {
            case type, code, message
            case declineCode = "decline_code"
        }
    }
    let error: Detail
}
