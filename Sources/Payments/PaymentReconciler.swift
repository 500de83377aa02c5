import Domain
import Foundation
import Logging
import Messaging
import Postgres
import Store

/// Compares the provider's recent charges with Emporium's records and repairs what diverged,
/// in either direction:
///
/// - a charge (or authorisation) for an order whose payment is not recorded as charged: the
///   worker died after the provider charged and its message was lost. The repair is a
///   `payment.provider_event` for the payment worker, which asks the provider and applies the
///   charge as a webhook would: the order is confirmed if it still awaits payment, the charge
///   refunded (an authorisation released) if the order was cancelled.
/// - a refund the provider made that Emporium has not recorded: the same event, of type
///   `charge.refunded`, and the worker records it.
/// - an order Emporium holds as paid with no charge at the provider: flagged `charge_missing`
///   for an admin (money never arrived; nothing automatic is right).
///
/// The repairs go through the outbox (the caller publishes them, or any relay does), so the
/// payment worker stays the one place that changes payments. It runs in the payment worker
/// on a schedule and as `emporium payments reconcile`.
package struct PaymentReconciler: Sendable {
    let provider: any PaymentProvider
    let pool: PostgresPool
    let exchange: String
    let logger: Logger
    private let payments = PaymentStore()
    private let orders = OrderStore()

    /// At most this many charges are compared per run.
    package static let maxCharges = 5_000

    /// Creates the reconciler; repairs are written to the outbox for `exchange`.
    package init(provider: any PaymentProvider, pool: PostgresPool, exchange: String, logger: Logger) {
        self.provider = provider
        self.pool = pool
        self.exchange = exchange
        self.logger = logger
    }

    /// A divergence found, and what was (or, in a dry run, would be) done.
    package struct Finding: Sendable, Equatable, CustomStringConvertible {
        package enum Kind: String, Sendable {
            /// The provider charged; Emporium's order awaits payment.
            case chargeForAwaitingOrder = "charge_for_awaiting_order"
            /// The provider charged; Emporium's order was cancelled.
            case chargeForCancelledOrder = "charge_for_cancelled_order"
            /// The provider charged; Emporium holds the order paid but not this charge.
            case chargeNotRecorded = "charge_not_recorded"
            /// The provider refunded; Emporium has not recorded it.
            case refundNotRecorded = "refund_not_recorded"
            /// Emporium holds the order paid; the provider holds no charge.
            case chargeMissing = "charge_missing"
            /// The provider charged for an order this database does not have.
            case unknownOrder = "unknown_order"
        }
        package let kind: Kind
        package let orderId: UUID
        package let reference: String?
        package let action: String

        package var description: String { "\(kind.rawValue) order=\(orderId.uuidString.lowercased()) ref=\(reference ?? "-"): \(action)" }
    }

    /// What one run found and repaired.
    package struct Report: Sendable {
        package var compared = 0
        package var findings: [Finding] = []
        /// The repair events written to the outbox (to publish).
        package var events: [EventEnvelope] = []
    }

    /// Compares the provider's charges created since `since` with Emporium's records; with
    /// `dryRun`, only reports.
    package func run(since: Date, dryRun: Bool) async throws -> Report {
        var report = Report()
        let charges = try await provider.recentCharges(since: since, limit: Self.maxCharges)
        report.compared = charges.count
        var charged = Set<UUID>()
        for charge in charges {
            switch charge.state {
            case .succeeded, .authorized: charged.insert(charge.paymentId)
            default: continue
            }
            try await compare(charge, dryRun: dryRun, into: &report)
        }
        try await findMissingCharges(since: since, charged: charged, dryRun: dryRun, into: &report)
        for finding in report.findings {
            logger.warning("payment reconciliation", metadata: ["finding": "\(finding)", "dry_run": "\(dryRun)"])
        }
        return report
    }

    private func compare(_ charge: ProviderCharge, dryRun: Bool, into report: inout Report) async throws {
        let (findings, events) = try await pool.withTransaction { db -> ([Finding], [EventEnvelope]) in
            guard let order = try await orders.paymentFacts(charge.orderId, on: db) else {
                return ([Finding(kind: .unknownOrder, orderId: charge.orderId, reference: charge.reference, action: "none: not an order of this database")], [])
            }
            let payment = try await payments.lock(charge.paymentId, on: db)
            var findings: [Finding] = []
            var events: [EventEnvelope] = []
            func repair(_ kind: Finding.Kind, type: String, action: String) throws {
                findings.append(Finding(kind: kind, orderId: charge.orderId, reference: charge.reference, action: dryRun ? "would \(action)" : action))
                guard !dryRun else { return }
                events.append(
                    try EventEnvelope(
                        type: .providerEventReceived, orderId: charge.orderId,
                        payload: ProviderEventReceived(
                            eventId: "reconcile:\(UUID().uuidString.lowercased())", type: type, paymentIntent: charge.reference, orderId: charge.orderId)))
            }
            let status = payment?.status ?? .pending
            if status == .pending || status == .failed {
                switch order.status {
                case .awaitingPayment: try repair(.chargeForAwaitingOrder, type: "payment_intent.succeeded", action: "record the charge and confirm the order")
                case .cancelled: try repair(.chargeForCancelledOrder, type: "payment_intent.succeeded", action: "refund the charge")
                default: try repair(.chargeNotRecorded, type: "payment_intent.succeeded", action: "record the charge")
                }
            } else if status.isCaptured, let payment {
                let known = try await payments.refundReferences(of: payment.id, on: db)
                if charge.refunds.contains(where: { !known.contains($0.reference) }) {
                    try repair(.refundNotRecorded, type: "charge.refunded", action: "record the provider's refunds")
                }
            }
            for event in events { _ = try await OutboxStore.append(event, exchange: exchange, on: db) }
            return (findings, events)
        }
        report.findings += findings
        report.events += events
    }

    /// Payments Emporium holds as charged that the provider's list does not show charged: each
    /// is asked for by its key (the list may be cut short) and, if the provider has no charge,
    /// its order is flagged `charge_missing`.
    private func findMissingCharges(since: Date, charged: Set<UUID>, dryRun: Bool, into report: inout Report) async throws {
        let held = try await pool.withConnection { db in try await payments.capturedSince(since, provider: provider.name, limit: Self.maxCharges, on: db) }
        for payment in held where !charged.contains(payment.id) {
            switch try await provider.lookupCharge(idempotencyKey: payment.id.uuidString.lowercased()) {
            case .succeeded, .authorized, .undecided: continue
            case .declined, .notFound: break
            }
            let flagged = dryRun ? true : try await pool.withConnection { db in try await orders.flag(payment.orderId, "charge_missing", on: db) }
            guard flagged else { continue }
            report.findings.append(
                Finding(
                    kind: .chargeMissing, orderId: payment.orderId, reference: nil,
                    action: dryRun ? "would flag the order charge_missing" : "flagged the order charge_missing"))
        }
    }
}
