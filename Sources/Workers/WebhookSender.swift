import AsyncHTTPClient
import Domain
import Foundation
import NIOCore

/// Sends one signed merchant webhook: `POST` the event JSON with `Emporium-Event-Id`,
/// `Emporium-Event-Type` and `Emporium-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`
/// (one `v1` per live secret while a secret rotates), a short deadline, and no redirects.
/// The target must resolve to public addresses unless private targets are allowed, and the
/// connection goes to the address that was checked (see ``OutboundAddress/PinnedTarget``).
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

    let settings: Settings
    /// Resolves a host name (the system resolver; a test may answer for names of its own).
    let resolve: @Sendable (String) -> [String]

    /// Creates the sender.
    package init(settings: Settings, resolve: @escaping @Sendable (String) -> [String] = OutboundAddress.resolve) {
        self.settings = settings
        self.resolve = resolve
    }

    /// An HTTP client for one attempt: it connects to the checked address of `target` (and
    /// names its host for `Host` and TLS), and never follows a redirect (a 3xx is the
    /// receiver's answer). One client per attempt because the pinned address is part of the
    /// client's configuration; webhooks are few, so the lost connection reuse costs little.
    static func makeClient(pinnedTo target: OutboundAddress.PinnedTarget) -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        if target.address != target.host { configuration.dnsOverride = [target.host: target.address] }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends `body` of event `eventId` of `eventType` to `url`, signed with each of `secrets`.
    package func send(url: String, eventId: UUID, eventType: String, body: String, secrets: [String]) async -> Answer {
        let started = ContinuousClock.now
        func answer(_ status: Int?, _ retryAfter: Duration? = nil, _ error: String?) -> Answer {
            Answer(status: status, retryAfter: retryAfter, error: error, duration: ContinuousClock.now - started)
        }
        // Checked at every attempt, not only when the endpoint was saved: a name can be made to
        // resolve elsewhere later. The connection goes to the address checked here.
        let target: OutboundAddress.PinnedTarget
        switch await OutboundAddress.pinWebhookURL(url, allowPrivate: settings.allowPrivateTargets, resolve: resolve) {
        case .success(let pinned): target = pinned
        case .failure(let refusal): return answer(nil, nil, "refused target: \(refusal.reason)")
        }
        let http = Self.makeClient(pinnedTo: target)
        let result = await post(body, to: url, eventId: eventId, eventType: eventType, secrets: secrets, with: http)
        // Nothing is left to send on it: a failed shutdown does not change the answer.
        try? await http.shutdown()
        switch result {
        case .success(let (status, retryAfter)): return answer(status, retryAfter, (200..<300).contains(status) ? nil : "HTTP \(status)")
        case .failure(let error): return answer(nil, nil, "\(type(of: error)): \(String(describing: error).prefix(300))")
        }
    }

    /// The signed `POST`: the receiver's status and `Retry-After`, or the error.
    private func post(
        _ body: String, to url: String, eventId: UUID, eventType: String, secrets: [String], with http: HTTPClient
    ) async -> Result<(Int, Duration?), any Error> {
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
            // The receiver's body is not needed; read a little so the connection closes cleanly.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return .success((Int(response.status.code), MerchantWebhooks.retryAfter(response.headers.first(name: "Retry-After"))))
        } catch {
            return .failure(error)
        }
    }
}
