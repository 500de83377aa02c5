import AsyncHTTPClient
import Domain
import Foundation
import NIOCore
import NIOPosix

/// Sends one signed merchant webhook: `POST` the event JSON with `Emporium-Event-Id`,
/// `Emporium-Event-Type` and `Emporium-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`
/// (one `v1` per live secret while a secret rotates), a short deadline, and no redirects.
/// The target must resolve to public addresses unless private targets are allowed, and the
/// connection goes to an address that was checked (see ``OutboundAddress/PinnedTarget``): the
/// first, or the next when one cannot be connected to, within the attempt's deadline.
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

    /// An HTTP client for one try: it connects to `address` (and names `host` for `Host` and
    /// TLS) within `connectTimeout`, and never follows a redirect (a 3xx is the receiver's
    /// answer). A failed connection fails the request at once instead of being retried until
    /// the deadline, so the next address gets the time left. One client per try because the
    /// address is part of the client's configuration; webhooks are few, so the lost connection
    /// reuse costs little.
    static func makeClient(host: String, address: String, connectTimeout: Duration) -> HTTPClient {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow)
        configuration.timeout = .init(connect: .nanoseconds(Int64(connectTimeout / .nanoseconds(1))), read: .seconds(30))
        configuration.connectionPool.retryConnectionEstablishment = false
        if address != host { configuration.dnsOverride = [host: address] }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The most addresses of one host an attempt dials before it gives up until the next attempt.
    static let addressesPerAttempt = 4

    /// Whether `error` ended a try before any connection existed, so nothing was sent and the
    /// next checked address may be dialled without risking a second delivery in this attempt.
    static func failedToConnect(_ error: any Error) -> Bool {
        switch error {
        case let error as HTTPClientError: return error == .connectTimeout
        case ChannelError.connectTimeout: return true
        case is NIOConnectionError: return true
        case let error as IOError: return [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH].contains(error.errnoCode)
        default: return false
        }
    }

    /// Sends `body` of event `eventId` of `eventType` to `url`, signed with each of `secrets`.
    package func send(url: String, eventId: UUID, eventType: String, body: String, secrets: [String]) async -> Answer {
        let started = ContinuousClock.now
        func answer(_ status: Int?, _ retryAfter: Duration? = nil, _ error: String?) -> Answer {
            Answer(status: status, retryAfter: retryAfter, error: error, duration: ContinuousClock.now - started)
        }
        // Checked at every attempt, not only when the endpoint was saved: a name can be made to
        // resolve elsewhere later. The connection goes to an address checked here.
        let target: OutboundAddress.PinnedTarget
        switch await OutboundAddress.pinWebhookURL(url, allowPrivate: settings.allowPrivateTargets, resolve: resolve) {
        case .success(let pinned): target = pinned
        case .failure(let refusal): return answer(nil, nil, "refused target: \(refusal.reason)")
        }
        let deadline = started + settings.timeout
        let addresses = target.addresses.prefix(Self.addressesPerAttempt)
        var tried: [String] = []
        var lastFailure: String?
        for address in addresses {
            let left = deadline - ContinuousClock.now
            guard left > .milliseconds(10) else { break }
            tried.append(address)
            // With more addresses to come, one that never answers may take only half of what is
            // left, so the next still has time.
            let connectTimeout = address == addresses.last ? left : left / 2
            let http = Self.makeClient(host: target.host, address: address, connectTimeout: connectTimeout)
            let result = await post(body, to: url, eventId: eventId, eventType: eventType, secrets: secrets, with: http, timeout: left)
            // Nothing is left to send on it: a failed shutdown does not change the answer.
            try? await http.shutdown()
            switch result {
            case .success(let (status, retryAfter)):
                return answer(status, retryAfter, (200..<300).contains(status) ? nil : "HTTP \(status)")
            case .failure(let error):
                lastFailure = "\(type(of: error)): \(String(describing: error).prefix(300))"
                if !Self.failedToConnect(error) { return answer(nil, nil, lastFailure) }
            }
        }
        guard let lastFailure else {
            let why = addresses.isEmpty ? "refused target: host \(target.host) has no address" : "the deadline passed while resolving \(target.host)"
            return answer(nil, nil, why)
        }
        let which = tried.count > 1 ? " (no connection to any of \(tried.joined(separator: ", ")))" : ""
        return answer(nil, nil, lastFailure + which)
    }

    /// The signed `POST`: the receiver's status and `Retry-After`, or the error.
    private func post(
        _ body: String, to url: String, eventId: UUID, eventType: String, secrets: [String], with http: HTTPClient, timeout: Duration
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
            let response = try await http.execute(request, timeout: .nanoseconds(Int64(timeout / .nanoseconds(1))))
            // The receiver's body is not needed; read a little so the connection closes cleanly.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return .success((Int(response.status.code), MerchantWebhooks.retryAfter(response.headers.first(name: "Retry-After"))))
        } catch {
            return .failure(error)
        }
    }
}
