import Domain
import Foundation
import Messaging
import Postgres
import Store

/// A card processor stand-in: `tok_visa` (and `tok_mastercard`) succeed,
/// `tok_chargeDeclined` is declined with `card_declined`, anything else with
/// `invalid_payment_method`. Each call takes `latency`. For failure drills, setting
/// `fake_provider_outage.active` makes every call fail transiently (as an unreachable
/// processor would), and, only when `faults` is on (`FAKE_PROVIDER_FAULTS=true`),
/// `tok_crash` kills the worker process (as a crashing SDK would) and
/// `tok_crash_after_charge` charges and then kills it, before the worker can record the
/// charge (once: a retry of the same key finds the charge and returns it). Its ledger is the
/// `fake_provider_operations` table, written outside the caller's transaction like a real
/// processor's records, so idempotency holds across worker crashes.
///
/// The ledger lives in Emporium's own database, so when that database is unavailable the
/// provider's error is the database's (`PostgresError`, which pauses the worker) rather than
/// a provider failure that would spend the message's retry attempts.
package struct FakePaymentProvider: PaymentProvider {
    package var name: String { PaymentIds.fakeProviderName }
    /// The fake captures every charge at once.
    package var captureMode: CaptureMode { .automatic }
    let ledger: FakeProviderLedger
    let latency: Duration
    let faults: Bool

    /// Creates the provider; `ledger` must not be the pool whose transaction calls it.
    package init(ledger: PostgresPool, latency: Duration = .zero, faults: Bool = false) {
        self.ledger = FakeProviderLedger(pool: ledger)
        self.latency = latency
        self.faults = faults
    }

    package func charge(_ request: ChargeRequest) async throws -> ProviderResult {
        if faults && request.paymentMethod == "tok_crash" {
            // Deliberate: the drill for a message that kills its worker (caught by the work
            // queue's delivery limit). Reachable only with FAKE_PROVIDER_FAULTS=true.
            fatalError("fake payment provider: simulated crash for tok_crash")
        }
        let crashAfterCharge = faults && request.paymentMethod == "tok_crash_after_charge"
        let declineCode: String? =
            switch request.paymentMethod {
            case "tok_visa", "tok_mastercard": nil
            case "tok_crash_after_charge" where crashAfterCharge: nil
            case "tok_chargeDeclined": "card_declined"
            default: "invalid_payment_method"
            }
        let (result, new) = try await record(
            kind: "charge", key: request.idempotencyKey, orderId: request.orderId, amountCents: request.amountCents,
            currency: request.currency, method: request.paymentMethod, declineCode: declineCode)
        if crashAfterCharge && new {
            // Deliberate: the drill for "charged, then the worker died before its commit".
            // Reachable only with FAKE_PROVIDER_FAULTS=true.
            fatalError("fake payment provider: simulated crash after charging \(request.idempotencyKey)")
        }
        return result
    }

    package func refund(_ request: RefundRequest) async throws -> ProviderResult {
        try await record(
            kind: "refund", key: request.idempotencyKey, orderId: request.orderId, amountCents: request.amountCents, currency: request.currency,
            method: nil, declineCode: nil
        ).result
    }

    package func chargeState(reference: String) async throws -> ChargeLookup {
        try await asProvider {
            try await refuseDuringOutage(reference)
            guard reference.hasPrefix("ch_"), let id = UUID(uuidString: String(reference.dropFirst(3))),
                let operation = try await ledger.operation(id: id)
            else { return .notFound }
            return operation.succeeded ? .succeeded(reference: reference) : .declined(code: operation.declineCode ?? "declined")
        }
    }

    /// The fake never authorises without capturing: a capture finds the charge made.
    package func capture(reference: String, idempotencyKey: String) async throws -> ProviderResult {
        switch try await chargeState(reference: reference) {
        case .succeeded: .succeeded(reference: reference)
        default: .declined(code: "authorization_expired")
        }
    }

    /// Nothing to release: the fake holds no authorisations.
    package func releaseAuthorization(reference: String, idempotencyKey: String) async throws {}

    /// The fake's client-confirmed payments are confirmed through `POST /api/v1/payments/confirm`
    /// with a card token: there is no provider-side intent and no client secret.
    package func openClientIntent(_ request: ChargeRequest) async throws -> ClientIntent {
        ClientIntent(reference: request.idempotencyKey, clientSecret: nil)
    }

    package func refunds(reference: String) async throws -> [ProviderRefund] {
        try await asProvider {
            try await refuseDuringOutage(reference)
            guard reference.hasPrefix("ch_"), let id = UUID(uuidString: String(reference.dropFirst(3))) else { return [] }
            return try await ledger.refunds(ofCharge: id).map {
                ProviderRefund(reference: Self.reference("refund", $0.id), amountCents: $0.amountCents, refundId: UUID(uuidString: $0.key))
            }
        }
    }

    package func recentCharges(since: Date, limit: Int) async throws -> [ProviderCharge] {
        try await asProvider {
            try await refuseDuringOutage("reconcile")
            let found = try await ledger.charges(since: since, limit: limit)
            return found.charges.compactMap { charge in
                guard let paymentId = UUID(uuidString: charge.key), let orderId = charge.orderId else { return nil }
                let reference = Self.reference("charge", charge.id)
                return ProviderCharge(
                    reference: reference, paymentId: paymentId, orderId: orderId,
                    state: charge.succeeded ? .succeeded(reference: reference) : .declined(code: charge.declineCode ?? "declined"),
                    amountCents: charge.amountCents,
                    refunds: (found.refunds[orderId] ?? []).map {
                        ProviderRefund(reference: Self.reference("refund", $0.id), amountCents: $0.amountCents, refundId: UUID(uuidString: $0.key))
                    }, created: charge.createdAt)
            }
        }
    }

    package func lookupCharge(idempotencyKey: String) async throws -> ChargeLookup {
        try await asProvider {
            if latency > .zero { try await Task.sleep(for: latency) }
            try await refuseDuringOutage(idempotencyKey)
            guard let operation = try await ledger.operation(key: idempotencyKey, kind: "charge") else { return .notFound }
            return operation.succeeded ? .succeeded(reference: Self.reference("charge", operation.id)) : .declined(code: operation.declineCode ?? "declined")
        }
    }

    /// Throws a transient failure while the drill switch `fake_provider_outage.active` is on.
    private func refuseDuringOutage(_ key: String) async throws {
        guard try await ledger.outage() else { return }
        try? await ledger.noteRefused(key)
        throw TransientFailure("payment provider unavailable (outage)")
    }

    /// Stores the first result for `key` and returns whatever is stored, and whether this
    /// call stored it.
    private func record(
        kind: String, key: String, orderId: UUID, amountCents: Int, currency: String, method: String?,
        declineCode: String?
    ) async throws -> (result: ProviderResult, new: Bool) {
        try await asProvider {
            if latency > .zero { try await Task.sleep(for: latency) }
            let operation: FakeProviderLedger.Operation, new: Bool
            if let stored = try await ledger.recordUnlessDownOrTaken(
                key: key, kind: kind, orderId: orderId, amountCents: amountCents, currency: currency,
                method: method, succeeded: declineCode == nil, declineCode: declineCode)
            {
                (operation, new) = (stored, true)
            } else {
                // Nothing stored: the outage drill is on (refused and noted), or the key was
                // used before (a retry), whose operation is the answer.
                try await refuseDuringOutage(key)
                guard let earlier = try await ledger.operation(key: key, kind: nil) else {
                    throw TransientFailure("payment provider: the operation \(key) was neither stored nor found; retry")
                }
                (operation, new) = (earlier, false)
            }
            let result: ProviderResult =
                operation.succeeded ? .succeeded(reference: Self.reference(kind, operation.id)) : .declined(code: operation.declineCode ?? "declined")
            return (result, new)
        }
    }

    /// A processor's reference for an operation: `ch_…` for charges, `re_…` for refunds.
    private static func reference(_ kind: String, _ id: UUID) -> String { (kind == "charge" ? "ch_" : "re_") + id.uuidString.lowercased() }

    /// Runs a ledger call as the provider's: the database being unavailable stays the
    /// database's error (it pauses the worker); any other transient database error is the
    /// provider's own failure.
    private func asProvider<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PostgresError where error.isTransient && !error.isUnavailable {
            throw TransientFailure("payment provider unavailable: \(error.message)")
        }
    }
}
