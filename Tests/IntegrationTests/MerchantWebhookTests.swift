import Crypto
import Domain
import Foundation
import Postgres
import Synchronization
import TestSupport
import Testing
import Workers

/// Merchant webhooks against a local receiver: signed as documented, retried on 5xx (after
/// what `Retry-After` asks), never on a 4xx, given up into the dead-letter queue and replayed
/// from there, an endpoint that keeps failing disabled, and private targets refused.
@Suite("Merchant webhooks")
struct MerchantWebhookTests {
    /// Stack options with quick retries: `attempts` tries, waits from `base`.
    func options(attempts: Int = 3, base: Duration = .milliseconds(200), disableAfter: Duration = .seconds(3_600)) -> Stack.Options {
        var options = Stack.Options()
        options.webhooks.maxAttempts = attempts
        options.webhooks.backoffBase = base
        options.webhooks.disableAfter = disableAfter
        return options
    }

    /// Registers `url` for `types` as an admin; returns the endpoint id and its secret.
    func register(_ stack: Stack, _ admin: String, url: String, types: [String] = ["order.*"]) async throws -> (id: UUID, secret: String) {
        let created = try await stack.request(.post, "/api/v1/webhook-endpoints", token: admin, json: ["url": url, "event_types": types])
        try #require(created.status == .created, "\(created.body)")
        return (try #require(uuid(created.json["id"])), try #require(created.json["secret"] as? String))
    }

    /// The README's recipe, written out here independently of Emporium's code: HMAC-SHA256 with
    /// the secret over "<t>.<raw body>", hex, compared with each v1 of the header.
    func verifies(_ request: WebhookReceiver.Received, secret: String) -> Bool {
        guard let header = request.headers["emporium-signature"] else { return false }
        let parts = header.split(separator: ",").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
        guard let t = parts.first(where: { $0.first == "t" })?.last, let timestamp = Int(t),
            abs(Int(Date().timeIntervalSince1970) - timestamp) < 300
        else { return false }
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(t).".utf8) + request.body, using: SymmetricKey(data: Data(secret.utf8)))
        let expected = mac.map { String(format: "%02x", $0) }.joined()
        return parts.contains { $0.first == "v1" && $0.last == expected }
    }

    /// The delivery rows of an endpoint, as the API lists them.
    func deliveries(_ stack: Stack, _ admin: String, _ endpoint: UUID) async throws -> [[String: Any]] {
        let page = try await stack.request(.get, "/api/v1/webhook-endpoints/\(endpoint)/deliveries?page_size=100", token: admin)
        return page.json["items"] as? [[String: Any]] ?? []
    }

    @Test("deliveries are signed as the README says, carry the event id and type, and a 500 is retried until it succeeds")
    func signedAndRetried() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.close() }
        // The first attempt of every event fails with 500.
        receiver.answer { _, earlier in earlier == 0 ? (500, [:]) : (200, [:]) }
        try await Stack.run(options()) { stack in
            let admin = try await stack.admin()
            let endpoint = try await register(stack, admin, url: receiver.url, types: ["order.*"])
            // Stored sealed (the stacks set WEBHOOK_SECRETS_KEY), yet the deliveries below verify with it.
            let atRest = try await stack.db.query("SELECT secret FROM webhook_endpoints WHERE id = $1", [endpoint.id])[0].decode(String.self, "secret")
            #expect(SecretSeal.isSealed(atRest) && !atRest.contains(endpoint.secret), "the signing secret is stored sealed")
            let productId = try await stack.product(admin, stock: 5)
            let (_, token) = try await stack.customer()
            try await stack.addToCart(token, productId, quantity: 1)
            let orderId = try await stack.placeOrder(token)
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")

            let delivered = await TestEnvironment.eventually(timeout: .seconds(30)) {
                let rows = (try? await deliveries(stack, admin, endpoint.id)) ?? []
                return rows.count == 2 && rows.allSatisfy { $0["status"] as? String == "SUCCEEDED" }
            }
            let log = try await deliveries(stack, admin, endpoint.id)
            #expect(delivered, "deliveries: \(log)")
            for row in try await deliveries(stack, admin, endpoint.id) {
                #expect(row["attempts"] as? Int == 2)
                #expect(row["response_code"] as? Int == 200)
                #expect(row["duration_ms"] is Int)
            }
            let requests = receiver.requests
            #expect(Set(requests.compactMap(\.eventType)) == ["order.placed", "order.confirmed"], "payment.* was not subscribed")
            for request in requests {
                #expect(verifies(request, secret: endpoint.secret), "signature of \(request.headers)")
                #expect(!verifies(request, secret: "whsec_wrong"))
                #expect(request.json["id"] as? String == request.eventId)
                #expect(request.json["type"] as? String == request.eventType)
                #expect(request.json["order_id"] as? String == orderId.uuidString)
            }
            // Each event twice (500, then 200), with the same id: a receiver dedupes on it.
            for id in Set(requests.compactMap(\.eventId)) { #expect(receiver.requests(forEvent: id).count == 2) }

            // The CLI reads the same log.
            let listed = try CLI(stack: stack).run("webhooks", "deliveries", "--endpoint", endpoint.id.uuidString, "--status", "SUCCEEDED")
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stdout.contains("order.confirmed") && listed.stdout.contains("order.placed"), "\(listed.stdout)")
        }
    }

    @Test("a signing secret that does not open (sealed under another WEBHOOK_SECRETS_KEY) fails each attempt with that reason; nothing is sent unsigned")
    func secretThatDoesNotOpen() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.close() }
        receiver.answer { _, _ in (200, [:]) }
        try await Stack.run(options(attempts: 8)) { stack in
            let admin = try await stack.admin()
            let endpoint = try await register(stack, admin, url: receiver.url, types: ["order.placed"])
            let foreign = try SecretSeal(base64Key: SecretSealTestKeys.make()).seal(endpoint.secret, for: endpoint.id)
            try await stack.db.query("UPDATE webhook_endpoints SET secret = $2 WHERE id = $1", [endpoint.id, foreign])
            _ = try await stack.purchase()
            let failing = await TestEnvironment.eventually(timeout: .seconds(30)) {
                guard let row = try? await deliveries(stack, admin, endpoint.id).first else { return false }
                return (row["attempts"] as? Int ?? 0) >= 2 && (row["last_error"] as? String)?.contains("does not open with WEBHOOK_SECRETS_KEY") == true
                    && row["status"] as? String == "PENDING"
            }
            let log = try await deliveries(stack, admin, endpoint.id)
            #expect(failing, "deliveries: \(log)")
            #expect(receiver.requests.isEmpty, "a delivery went out without its secret")
        }
    }

    @Test("a 400 is not retried; Retry-After is waited for before the next attempt")
    func noRetryOn4xxAndRetryAfterHonoured() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.close() }
        receiver.answer { request, earlier in
            switch request.eventType {
            case "order.placed": (400, [:])
            default: earlier == 0 ? (503, ["Retry-After": "2"]) : (200, [:])
            }
        }
        try await Stack.run(options(attempts: 5, base: .milliseconds(100))) { stack in
            let admin = try await stack.admin()
            let endpoint = try await register(stack, admin, url: receiver.url)
            let (_, _, _, orderId) = try await stack.purchase()
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let settled = await TestEnvironment.eventually(timeout: .seconds(30)) {
                let rows = (try? await deliveries(stack, admin, endpoint.id)) ?? []
                return rows.count == 2 && rows.allSatisfy { ["SUCCEEDED", "FAILED"].contains($0["status"] as? String) }
            }
            let log = try await deliveries(stack, admin, endpoint.id)
            try #require(settled, "deliveries: \(log)")
            let rows = try await deliveries(stack, admin, endpoint.id)
            let placed = try #require(rows.first { $0["event_type"] as? String == "order.placed" })
            #expect(placed["status"] as? String == "FAILED")
            #expect(placed["attempts"] as? Int == 1, "a 400 was retried")
            #expect(placed["response_code"] as? Int == 400)
            #expect(receiver.requests.filter { $0.eventType == "order.placed" }.count == 1)

            let confirmed = receiver.requests.filter { $0.eventType == "order.confirmed" }
            #expect(confirmed.count == 2)
            if confirmed.count == 2 {
                // The backoff alone would have come back after 50-100 ms.
                #expect(confirmed[1].at - confirmed[0].at >= .seconds(2), "Retry-After: 2 was not honoured: \(confirmed[1].at - confirmed[0].at)")
            }
            // The given-up delivery is in the notification worker's dead-letter queue.
            #expect(try await stack.deadLetters(.notification) == 1)
        }
    }

    @Test("a dead endpoint's deliveries are given up into the dead-letter queue and `emporium dlq replay` sends them again")
    func deadEndpointReplayedFromDLQ() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.close() }
        receiver.answer { _, _ in (500, [:]) }
        try await Stack.run(options(attempts: 3, base: .milliseconds(100))) { stack in
            let admin = try await stack.admin()
            let endpoint = try await register(stack, admin, url: receiver.url, types: ["order.confirmed"])
            let (_, _, _, orderId) = try await stack.purchase()
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let givenUp = await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.deadLetters(.notification)) == 1 }
            #expect(givenUp)
            let failed = try #require(try await deliveries(stack, admin, endpoint.id).first)
            #expect(failed["status"] as? String == "FAILED")
            #expect(failed["attempts"] as? Int == 3)
            #expect(receiver.requests.count == 3)

            // The receiver is fixed; the operator replays the dead letters.
            receiver.answer { _, _ in (200, [:]) }
            let replay = try CLI(stack: stack).run("dlq", "replay", "--queue", "notification", "--type", "webhook.delivery")
            #expect(replay.status == 0, "\(replay.stdout)\(replay.stderr)")
            let delivered = await TestEnvironment.eventually(timeout: .seconds(30)) {
                (try? await deliveries(stack, admin, endpoint.id).first?["status"] as? String) == "SUCCEEDED"
            }
            let log = try await deliveries(stack, admin, endpoint.id)
            #expect(delivered, "after the replay: \(log)")
            #expect(receiver.requests.count == 4)
            #expect(try await stack.deadLetters(.notification) == 0)
        }
    }

    @Test("an endpoint that keeps failing longer than WEBHOOK_DISABLE_AFTER is disabled and admins are told; manual redelivery works")
    func failingEndpointDisabled() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.close() }
        receiver.answer { _, _ in (502, [:]) }
        try await Stack.run(options(attempts: 8, base: .milliseconds(600), disableAfter: .seconds(1))) { stack in
            let admin = try await stack.admin()
            let endpoint = try await register(stack, admin, url: receiver.url, types: ["order.confirmed"])
            let (_, _, _, orderId) = try await stack.purchase()
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let disabled = await TestEnvironment.eventually(timeout: .seconds(30)) {
                (try? await stack.request(.get, "/api/v1/webhook-endpoints/\(endpoint.id)", token: admin).json["enabled"] as? Bool) == false
            }
            #expect(disabled)
            #expect(try await stack.count("SELECT count(*) FROM notifications WHERE channel = 'admin' AND template = 'webhook_endpoint_disabled'") == 1)
            let shown = try await stack.request(.get, "/api/v1/webhook-endpoints/\(endpoint.id)", token: admin)
            #expect((shown.json["disabled_reason"] as? String)?.contains("failed since") == true)
            #expect(shown.json["secret"] == nil, "the secret is shown only once")

            // Fixed and enabled again; the pending delivery is sent, and one can be redelivered by hand.
            receiver.answer { _, _ in (200, [:]) }
            let enabled = try await stack.request(.put, "/api/v1/webhook-endpoints/\(endpoint.id)", token: admin, json: ["enabled": true])
            #expect(enabled.status == .ok)
            let sent = await TestEnvironment.eventually(timeout: .seconds(30)) {
                (try? await deliveries(stack, admin, endpoint.id).first?["status"] as? String) == "SUCCEEDED"
            }
            #expect(sent)
            let delivery = try #require(uuid(try await deliveries(stack, admin, endpoint.id).first?["id"]))
            let before = receiver.requests.count
            let again = try await stack.request(.post, "/api/v1/webhook-endpoints/\(endpoint.id)/deliveries/\(delivery)/redeliver", token: admin)
            #expect(again.status == .accepted)
            #expect(await TestEnvironment.eventually { receiver.requests.count == before + 1 })
        }
    }

    @Test("endpoint URLs must be https and resolve to public addresses; secrets rotate with an overlap")
    func ssrfAndRotation() async throws {
        var options = options()
        options.webhooks.sender.allowPrivateTargets = false
        try await Stack.apiOnly(options) { stack in
            let admin = try await stack.admin()
            for url in [
                "http://93.184.216.34/hook", "https://127.0.0.1/hook", "https://localhost:8443/hook", "https://10.1.2.3/hook", "https://169.254.169.254/latest",
                "https://[::1]/hook", "https://[fd00::1]/hook", "https://user:pw@93.184.216.34/hook", "ftp://93.184.216.34/",
            ] {
                let refused = try await stack.request(.post, "/api/v1/webhook-endpoints", token: admin, json: ["url": url, "event_types": ["order.*"]])
                #expect(refused.status == .unprocessableContent, "\(url): \(refused.status) \(refused.body)")
            }
            let badType = try await stack.request(
                .post, "/api/v1/webhook-endpoints", token: admin, json: ["url": "https://93.184.216.34/hook", "event_types": ["stock.reserved"]])
            #expect(badType.status == .unprocessableContent)
            let (_, customer) = try await stack.customer()
            let forbidden = try await stack.request(
                .post, "/api/v1/webhook-endpoints", token: customer, json: ["url": "https://93.184.216.34/hook", "event_types": ["order.*"]])
            #expect(forbidden.status == .forbidden)

            let endpoint = try await register(stack, admin, url: "https://93.184.216.34/hook", types: ["order.*", "refund.*"])
            let rotated = try await stack.request(.post, "/api/v1/webhook-endpoints/\(endpoint.id)/rotate-secret", token: admin)
            #expect(rotated.status == .ok)
            let newSecret = try #require(rotated.json["secret"] as? String)
            #expect(newSecret != endpoint.secret)
            #expect(rotated.json["previous_secret_expires_at"] is String)
            #expect(try await stack.request(.delete, "/api/v1/webhook-endpoints/\(endpoint.id)", token: admin).status == .noContent)
            #expect(try await stack.request(.get, "/api/v1/webhook-endpoints/\(endpoint.id)", token: admin).status == .notFound)
        }
    }

    @Test("a redirect is not followed: the delivery is given up with the 3xx and the redirect's target hears nothing")
    func redirectNotFollowed() async throws {
        let receiver = try WebhookReceiver()
        let elsewhere = try WebhookReceiver()
        defer {
            receiver.close()
            elsewhere.close()
        }
        receiver.answer { _, _ in (302, ["Location": elsewhere.url]) }
        try await Stack.run(options()) { stack in
            let admin = try await stack.admin()
            let endpoint = try await register(stack, admin, url: receiver.url, types: ["order.confirmed"])
            let (_, _, _, orderId) = try await stack.purchase()
            #expect(try await stack.awaitTerminal(orderId).status == "CONFIRMED")
            let givenUp = await TestEnvironment.eventually(timeout: .seconds(30)) {
                (try? await deliveries(stack, admin, endpoint.id).first?["status"] as? String) == "FAILED"
            }
            #expect(givenUp)
            let row = try #require(try await deliveries(stack, admin, endpoint.id).first)
            #expect(row["response_code"] as? Int == 302)
            #expect(row["attempts"] as? Int == 1)
            #expect(receiver.requests.count == 1)
            #expect(elsewhere.requests.isEmpty)
        }
    }

    @Test("an attempt connects to the address it checked, not to what the name resolves to afterwards (DNS rebinding)")
    func pinnedAddress() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.close() }
        let lookups = Mutex(0)
        var settings = WebhookSender.Settings()
        settings.allowPrivateTargets = true
        // A `.invalid` name never resolves (RFC 2606), so the request can arrive only if the
        // sender dials the address its own check resolved, not one the HTTP client looks up.
        let sender = WebhookSender(settings: settings) { host in
            lookups.withLock { $0 += 1 }
            return host == "merchant.invalid" ? ["127.0.0.1"] : []
        }
        let url = "http://merchant.invalid:\(receiver.port)/hooks/emporium"
        let sent = await sender.send(url: url, eventId: UUID(), eventType: "order.confirmed", body: #"{"ok":true}"#, secrets: ["whsec_pinned"])
        #expect(sent.status == 200, "\(sent.error ?? "no error")")
        let arrived = try #require(receiver.requests.first)
        #expect(arrived.headers["host"] == "merchant.invalid:\(receiver.port)", "the request still names the host")
        #expect(verifies(arrived, secret: "whsec_pinned"))
        #expect(lookups.withLock { $0 } == 1, "one resolution per attempt: the one that was checked")

        // The name was public when the endpoint was saved and is private at the attempt: the
        // attempt is refused before anything connects.
        let rebound = WebhookSender(settings: WebhookSender.Settings()) { _ in ["93.184.216.34", "127.0.0.1"] }
        let refused = await rebound.send(
            url: "https://merchant.invalid:\(receiver.port)/hooks/emporium", eventId: UUID(), eventType: "order.confirmed", body: "{}", secrets: ["s"])
        #expect(refused.status == nil)
        #expect(refused.error?.contains("refused target: host merchant.invalid resolves to a private") == true, "\(refused.error ?? "no error")")
        #expect(receiver.requests.count == 1)
    }

    @Test("an attempt that cannot connect to one checked address dials the next; any other failure ends the attempt")
    func nextPinnedAddress() async throws {
        let receiver = try WebhookReceiver()
        defer { receiver.close() }
        var settings = WebhookSender.Settings()
        settings.allowPrivateTargets = true
        // The receiver listens on 127.0.0.1 only, so 127.0.0.2 and 127.0.0.3 refuse the connection.
        let answers: [String: [String]] = [
            "refuses-first.invalid": ["127.0.0.2", "127.0.0.1"], "refuses-all.invalid": ["127.0.0.2", "127.0.0.3"],
        ]
        let sender = WebhookSender(settings: settings) { answers[$0] ?? [] }
        let sent = await sender.send(
            url: "http://refuses-first.invalid:\(receiver.port)/hooks/emporium", eventId: UUID(), eventType: "order.confirmed", body: #"{"ok":true}"#,
            secrets: ["whsec_next"])
        #expect(sent.status == 200, "\(sent.error ?? "no error")")
        #expect(receiver.requests.count == 1)
        #expect(receiver.requests.first.map { verifies($0, secret: "whsec_next") } == true)

        let refused = await sender.send(
            url: "http://refuses-all.invalid:\(receiver.port)/hooks/emporium", eventId: UUID(), eventType: "order.confirmed", body: "{}", secrets: ["s"])
        #expect(refused.status == nil)
        #expect(refused.error?.contains("no connection to any of 127.0.0.2, 127.0.0.3") == true, "\(refused.error ?? "no error")")
        #expect(receiver.requests.count == 1)

        // A receiver that answered (here 500) was reached: the next address is not dialled (it
        // would refuse, and the answer would be that refusal), or a receiver behind it would
        // get the event twice in one attempt.
        receiver.answer { _, _ in (500, [:]) }
        let answersFirst = WebhookSender(settings: settings) { _ in ["127.0.0.1", "127.0.0.4"] }
        let failed = await answersFirst.send(
            url: "http://answers-first.invalid:\(receiver.port)/hooks/emporium", eventId: UUID(), eventType: "order.confirmed", body: "{}", secrets: ["s"])
        #expect(failed.status == 500)
        #expect(failed.error == "HTTP 500")
        #expect(receiver.requests.count == 2)
    }
}
