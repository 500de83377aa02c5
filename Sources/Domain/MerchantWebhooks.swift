import Foundation

/// The rules of merchant webhooks: which events they carry, how endpoints choose them, and
/// when a failed delivery is tried again.
package enum MerchantWebhooks {
    /// The events merchants can receive: the order's life, payments and refunds. The saga's
    /// internal steps (stock, payment requests, provider notices) stay inside.
    package static let eventTypes: [EventType] = [
        .orderPlaced, .orderConfirmed, .orderCancelled, .orderShipped, .orderDelivered, .paymentSucceeded, .paymentFailed, .paymentRefunded,
        .refundRequested,
    ]

    /// Whether `pattern` is a valid subscription: `*`, a family (`order.*`, `payment.*`,
    /// `refund.*`) or an exact type of ``eventTypes``.
    package static func isValidPattern(_ pattern: String) -> Bool {
        pattern == "*" || ["order.*", "payment.*", "refund.*"].contains(pattern) || eventTypes.contains { $0.rawValue == pattern }
    }

    /// Every subscription pattern that receives `type`: `*`, the type itself, and each family
    /// it belongs to (`order.*` for `order.placed`). An endpoint receives the event when its
    /// patterns share one with these, which the database can decide in the statement that
    /// queues the deliveries (`event_types && $patterns`), with no look-up of its own.
    package static func patterns(receiving type: String) -> [String] {
        var patterns = ["*", type]
        var family = Substring(type)
        while let dot = family.lastIndex(of: ".") {
            family = family[..<dot]
            patterns.append(family + ".*")
        }
        return patterns
    }

    /// How an attempt ended.
    package enum AttemptOutcome: Equatable, Sendable {
        case delivered
        /// Worth trying again: a timeout, a network error, 408, 429 or 5xx.
        case retryable
        /// The receiver refused it (another 4xx, or a redirect, which is not followed).
        case refused
    }

    /// The outcome of an attempt that got `status` back (nil: no answer).
    package static func outcome(status: Int?) -> AttemptOutcome {
        guard let status else { return .retryable }
        switch status {
        case 200..<300: return .delivered
        case 408, 429, 500..<600: return .retryable
        default: return .refused
        }
    }

    /// The wait before attempt `attempt + 1` after `attempt` failed: exponential from `base`,
    /// capped at `cap`, with full jitter over its upper half (`random` in 0...1) so endpoints that
    /// failed together do not come back together; at least what `Retry-After` asked for
    /// (capped too, so a receiver cannot park a delivery for days).
    package static func delay(afterAttempt attempt: Int, base: Duration, cap: Duration, retryAfter: Duration?, random: Double) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let raw = min(base.secondsWithFractionValue * pow(2, Double(exponent)), cap.secondsWithFractionValue)
        let jittered = raw / 2 + raw / 2 * min(max(random, 0), 1)
        let asked = min(retryAfter?.secondsWithFractionValue ?? 0, cap.secondsWithFractionValue)
        return .milliseconds(Int64((max(jittered, asked) * 1_000).rounded()))
    }

    /// A `Retry-After` header: seconds, or an HTTP date.
    package static func retryAfter(_ header: String?, now: Date = Date()) -> Duration? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        if let seconds = Int(header), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: header) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1_000))
    }
}

extension Duration {
    /// Seconds as a Double (Domain has no Units dependency for this one conversion).
    var secondsWithFractionValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
