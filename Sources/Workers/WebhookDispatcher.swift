import AMQP
import Domain
import Foundation
import Logging
import Messaging
import Postgres
import ServiceLifecycle
import Store

/// Sends merchant webhook deliveries (in the notification worker): leases due deliveries,
/// sends each, and records the attempt. A timeout, a network error, 408, 429 or 5xx is tried
/// again with exponential backoff and jitter (at least what `Retry-After` asked for); another
/// 4xx, a redirect, or the last attempt gives the delivery up: it is marked FAILED and its
/// `webhook.delivery` message goes to the notification worker's dead-letter queue, from which
/// `emporium dlq replay` sends it again. An endpoint that has failed for `disableAfter` is
/// disabled and an admin notice recorded.
package struct WebhookDispatcher: Service {
    /// What the dispatcher reads from its environment.
    package struct Settings: Sendable {
        /// The sender's settings (`WEBHOOK_TIMEOUT_MS`, `WEBHOOK_ALLOW_PRIVATE_TARGETS`).
        package var sender = WebhookSender.Settings()
        /// `WEBHOOK_MAX_ATTEMPTS` (default 8): attempts before a delivery is given up.
        package var maxAttempts = 8
        /// `WEBHOOK_BACKOFF_BASE_MS` (default 1000): the wait after the first failure; it doubles.
        package var backoffBase: Duration = .seconds(1)
        /// `WEBHOOK_BACKOFF_MAX_SECONDS` (default 3600): the longest wait between attempts.
        package var backoffCap: Duration = .seconds(3_600)
        /// `WEBHOOK_DISABLE_AFTER_SECONDS` (default 259200, 3 days): an endpoint failing this long is disabled.
        package var disableAfter: Duration = .seconds(259_200)
        /// `WEBHOOK_POLL_INTERVAL_MS` (default 500): how often due deliveries are looked for.
        package var pollInterval: Duration = .milliseconds(500)
        /// Deliveries sent at once.
        package var concurrency = 8
        /// `WEBHOOK_SECRETS_KEY`: opens the sealed signing secrets (and seals, at start, any
        /// stored before it was set). Without it, secrets stored in clear still sign.
        package var secretSeal: SecretSeal?
        /// The defaults.
        package init() {}
    }

    let pool: PostgresPool
    let publisher: AMQPPublisher
    let names: MessagingNames
    let sender: WebhookSender
    let settings: Settings
    let logger: Logger
    /// The deliveries' store, opening and sealing secrets with the configured key.
    private let webhooks: WebhookStore
    private let notices = NotificationStore()

    /// Creates the dispatcher.
    package init(pool: PostgresPool, publisher: AMQPPublisher, names: MessagingNames, sender: WebhookSender, settings: Settings, logger: Logger) {
        self.pool = pool
        self.publisher = publisher
        self.names = names
        self.sender = sender
        self.settings = settings
        self.logger = logger
        self.webhooks = WebhookStore(seal: settings.secretSeal)
    }

    package func run() async throws {
        var sealing = settings.secretSeal != nil
        await runPeriodically(every: settings.pollInterval, task: "webhook dispatcher", logger: logger) {
            // Once the key is set, secrets stored in clear before are sealed (retried each poll
            // until the database lets it happen).
            if sealing {
                let sealed = try await webhooks.sealStoredSecrets(on: pool)
                sealing = false
                if sealed > 0 { logger.info("sealed the webhook signing secrets stored in clear", metadata: ["endpoints": "\(sealed)"]) }
            }
            // Keeps going while full batches come back (then waits for the next poll), but not
            // past a shutdown: with many due deliveries (a receiver down) the batches never run
            // dry, and the process would not stop. Leases of unsent rows simply run out.
            while !Task.isShuttingDownGracefully, !Task.isCancelled, try await dispatchOnce() == settings.concurrency {}
        }
    }

    /// Leases and sends one batch; returns how many deliveries it sent.
    @discardableResult
    package func dispatchOnce() async throws -> Int {
        // The lease outlives the slowest attempt, so no other dispatcher takes it meanwhile.
        let due = try await webhooks.lease(limit: settings.concurrency, lease: settings.sender.timeout * 3 + .seconds(5), on: pool)
        await withTaskGroup(of: Void.self) { group in
            for delivery in due { group.addTask { await deliver(delivery) } }
        }
        return due.count
    }

    private func deliver(_ due: WebhookStore.Due) async {
        // A secret that cannot be opened is a failed attempt with the reason, retried like a
        // receiver that is down (and shown in the delivery log), never a send unsigned.
        let answer =
            if let problem = due.secretProblem {
                WebhookSender.Answer(status: nil, retryAfter: nil, error: problem, duration: .zero)
            } else {
                await sender.send(url: due.url, eventId: due.eventId, eventType: due.eventType, body: due.body, secrets: due.secrets)
            }
        let attempt = WebhookStore.Attempt(
            responseCode: answer.status,
            durationMs: Int(answer.duration.components.seconds * 1_000 + answer.duration.components.attoseconds / 1_000_000_000_000_000),
            error: answer.error)
        let attempts = due.attempts + 1
        do {
            switch MerchantWebhooks.outcome(status: answer.status) {
            case .delivered:
                try await webhooks.recordDelivered(due, attempt, on: pool)
            case .retryable where attempts < settings.maxAttempts:
                let wait = MerchantWebhooks.delay(
                    afterAttempt: attempts, base: settings.backoffBase, cap: settings.backoffCap, retryAfter: answer.retryAfter,
                    random: Double.random(in: 0...1))
                let since = try await webhooks.recordFailed(due, attempt, retryIn: wait, on: pool)
                try await disableIfFailingTooLong(due, since: since)
            case .retryable, .refused:
                let since = try await webhooks.recordFailed(due, attempt, retryIn: nil, on: pool)
                try await deadLetter(due, reason: answer.error ?? "failed", attempts: attempts)
                try await disableIfFailingTooLong(due, since: since)
            }
        } catch {
            // The lease runs out and the delivery is taken again: at least once.
            logger.warning("webhook delivery not recorded", metadata: ["delivery": "\(due.id)", "error": "\(error)"])
        }
    }

    /// The given-up delivery's `webhook.delivery` message, straight into the notification
    /// worker's dead-letter queue with the headers `emporium dlq` shows and replays by.
    private func deadLetter(_ due: WebhookStore.Due, reason: String, attempts: Int) async throws {
        let envelope = try EventEnvelope(
            type: .webhookDelivery, orderId: nil, payload: WebhookDeliveryRequested(deliveryId: due.id, endpointId: due.endpointId))
        var message = OutboxStore.message(for: envelope, body: try envelope.encoded(), exchange: names.eventsExchange)
        let now = DeadLetterHeader.timestamp()
        message.properties.headers[DeadLetterHeader.error] = .string("webhook to \(due.url) given up: \(reason)".prefixString(1_000))
        message.properties.headers[DeadLetterHeader.errorClass] = .string(FailureClass.permanent.rawValue)
        message.properties.headers[DeadLetterHeader.attempts] = .int(Int64(attempts))
        message.properties.headers[DeadLetterHeader.consumer] = .string(WorkerRole.notification.rawValue)
        message.properties.headers[DeadLetterHeader.originalExchange] = .string(names.eventsExchange)
        message.properties.headers[DeadLetterHeader.originalRoutingKey] = .string(EventType.webhookDelivery.rawValue)
        message.properties.headers[DeadLetterHeader.firstFailureAt] = .string(now)
        message.properties.headers[DeadLetterHeader.lastFailureAt] = .string(now)
        message.exchange = ""
        message.routingKey = names.deadLetterQueue(.notification)
        try await publisher.publish(message)
        logger.error("webhook delivery given up", metadata: ["delivery": "\(due.id)", "endpoint": "\(due.endpointId)", "error": "\(reason)"])
    }

    /// Disables the endpoint and records the admin notice in one transaction, so a crash
    /// between the two cannot leave an endpoint disabled that no admin was told about.
    private func disableIfFailingTooLong(_ due: WebhookStore.Due, since: Date) async throws {
        guard Date().timeIntervalSince(since) >= Double(settings.disableAfter.components.seconds) else { return }
        let reason = "every delivery failed since \(DeadLetterHeader.timestamp(since))"
        let notice =
            "Webhook endpoint \(due.endpointId.uuidString.lowercased()) (\(due.url)) was disabled: \(reason). Fix the receiver, then enable it again (PUT /api/v1/webhook-endpoints/{id} {\"enabled\": true})."
        let disabled = try await pool.withTransaction { [webhooks, notices] db in
            guard try await webhooks.disable(due.endpointId, reason: reason, on: db) else { return false }
            try await notices.recordAdminNotice(
                eventId: Domain.PaymentIds.derived("webhook-endpoint-disabled:\(due.endpointId.uuidString):\(since.timeIntervalSince1970)"),
                template: "webhook_endpoint_disabled", body: notice, on: db)
            return true
        }
        guard disabled else { return }
        logger.error("webhook endpoint disabled", metadata: ["endpoint": "\(due.endpointId)", "failing_since": "\(since)"])
    }
}

extension String {
    fileprivate func prefixString(_ count: Int) -> String { String(prefix(count)) }
}
