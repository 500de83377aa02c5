import AsyncHTTPClient
import Domain
import Foundation
import NIOCore

/// Sends one signed merchant webhook: `POST` the event JSON with `Emporium-Event-Id`,
/// `Emporium-Event-Type` and `Emporium-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`
/// (one `v1` per live secret while a secret rotates), a short deadline, and no redirects.
/// The target must resolve to public addresses unless private targets are allowed.
package struct WebhookSender: Sendable {
    /// What the sender reads from its environment.
    package struct Settings: Sendable {
        /// `WEBHOOK_TIMEOUT_MS` (default 5000): the deadline of one attempt.
        package var timeout: Duration = .seconds(5)
        /// `WEBHOOK_ALLOW_PRIVATE_TARGETS` (default false): allow http and private or loopback
        /// addresses (local development and tests only).
        package var allowPrivateTargets = false
        /// The defaults.
        package init() {}
    }

    /// What an attempt got.
    package struct Answer: Sendable {
        package let status: Int?
        package let retryAfter: Duration?
        package let error: String?
        package let duration: Duration
    }

    let http: HTTPClient
    let settings: Settings

    /// Creates the sender; `http` must not follow redirects (see ``makeClient()``).
    package init(http: HTTPClient, settings: Settings) {
        self.http = http
        self.settings = settings
    }

    /// An HTTP client that never follows a redirect (a 3xx is the receiver's answer).
    package static func makeClient() -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends `body` of event `eventId` of `eventType` to `url`, signed with each of `secrets`.
    package func send(url: String, eventId: UUID, eventType: String, body: String, secrets: [String]) async -> Answer {
        let started = ContinuousClock.now
        func answer(_ status: Int?, _ retryAfter: Duration? = nil, _ error: String?) -> Answer {
            Answer(status: status, retryAfter: retryAfter, error: error, duration: ContinuousClock.now - started)
        }
        // Checked at every attempt, not only when the endpoint was saved: a name can be made to
        // resolve elsewhere later.
        if let refusal = await OutboundAddress.checkWebhookURL(url, allowPrivate: settings.allowPrivateTargets) {
            return answer(nil, nil, "refused target: \(refusal)")
        }
        let timestamp = Int(Date().timeIntervalSince1970)
        let signatures = secrets.map { "v1=" + WebhookSignature.hexSignature(Data(body.utf8), secret: $0, timestamp: timestamp) }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Emporium-Webhooks/1")
        request.headers.add(name: "Emporium-Event-Id", value: eventId.uuidString)
        request.headers.add(name: "Emporium-Event-Type", value: eventType)
        request.headers.add(name: "Emporium-Signature", value: (["t=\(timestamp)"] + signatures).joined(separator: ","))
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await http.execute(
                request,
                timeout: .milliseconds(Int64(settings.timeout.components.seconds * 1_000 + settings.timeout.components.attoseconds / 1_000_000_000_000_000)))
            // The receiver's body is not needed; read a little so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let status = Int(response.status.code)
            return answer(
                status, MerchantWebhooks.retryAfter(response.headers.first(name: "Retry-After")), (200..<300).contains(status) ? nil : "HTTP \(status)")
        } catch {
            return answer(nil, nil, "\(type(of: error)): \(String(describing: error).prefix(300))")
        }
    }
}
