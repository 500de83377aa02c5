import Foundation
import Logging
import Messaging
import Postgres

/// A charge to make. `idempotencyKey` is the payment id: the same key never charges twice.
public struct ChargeRequest: Sendable {
    public var idempotencyKey: String
    public var orderId: UUID
    public var amountCents: Int
    public var currency: String
    /// The card token, e.g. `tok_visa`.
    public var paymentMethod: String
}

/// What the provider said about a charge or refund.
public enum ProviderResult: Sendable, Equatable {
    /// Done; the provider's reference for it.
    case succeeded(reference: String)
    /// Refused for good (e.g. `card_declined`).
    case declined(code: String)
}

/// What the provider knows about a charge made (or not) under an idempotency key.
public enum ChargeLookup: Sendable, Equatable {
    /// The provider charged; its reference for the charge.
    case succeeded(reference: String)
    /// The provider was asked and declined.
    case declined(code: String)
    /// The provider never saw a charge with this key.
    case notFound
}

/// A payment processor. Implementations throw ``TransientFailure`` when the provider is
/// unreachable, so the message is retried with the same idempotency key.
public protocol PaymentProvider: Sendable {
    /// Stored on payment rows, e.g. `fake` or `stripe`.
    var name: String { get }
    /// Charges once per idempotency key; a repeated key returns the first result.
    func charge(_ request: ChargeRequest) async throws -> ProviderResult
    /// Refunds a charge once per idempotency key.
    func refund(idempotencyKey: String, orderId: UUID, chargeReference: String, amountCents: Int, currency: String) async throws -> ProviderResult
    /// Asks whether a charge was made under `idempotencyKey`, without making one. The payment
    /// worker asks before it concludes that an order that no longer awaits payment needs no
    /// refund: a worker may have charged and died before recording it.
    func lookupCharge(idempotencyKey: String) async throws -> ChargeLookup
}

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
public struct FakePaymentProvider: PaymentProvider {
    public var name: String { "fake" }
    let ledger: PostgresPool
    let latency: Duration
    let faults: Bool

    /// Creates the provider; `ledger` must not be the pool whose transaction calls it.
    public init(ledger: PostgresPool, latency: Duration = .zero, faults: Bool = false) {
        self.ledger = ledger
        self.latency = latency
        self.faults = faults
    }

    public func charge(_ request: ChargeRequest) async throws -> ProviderResult {
        if faults && request.paymentMethod == "tok_crash" {
            // Deliberate: the drill for a message that kills its worker (caught by the work
            // queue's delivery limit). Reachable only with FAKE_PROVIDER_FAULTS=true.
            fatalError("fake payment provider: simulated crash for tok_crash")
        }
        let crashAfterCharge = faults && request.paymentMethod == "tok_crash_after_charge"
        let outcome: ProviderResult = switch request.paymentMethod {
        case "tok_visa", "tok_mastercard": .succeeded(reference: "ch_\(UUID().uuidString.prefix(12).lowercased())")
        case "tok_crash_after_charge" where crashAfterCharge: .succeeded(reference: "ch_\(UUID().uuidString.prefix(12).lowercased())")
        case "tok_chargeDeclined": .declined(code: "card_declined")
        default: .declined(code: "invalid_payment_method")
        }
        let (result, new) = try await record(kind: "charge", key: request.idempotencyKey, orderId: request.orderId, amountCents: request.amountCents,
                                             currency: request.currency, method: request.paymentMethod, outcome: outcome)
        if crashAfterCharge && new {
            // Deliberate: the drill for "charged, then the worker died before its commit".
            // Reachable only with FAKE_PROVIDER_FAULTS=true.
            fatalError("fake payment provider: simulated crash after charging \(request.idempotencyKey)")
        }
        return result
    }

    public func refund(idempotencyKey: String, orderId: UUID, chargeReference: String, amountCents: Int, currency: String) async throws -> ProviderResult {
        try await record(kind: "refund", key: idempotencyKey, orderId: orderId, amountCents: amountCents, currency: currency, method: nil,
                         outcome: .succeeded(reference: "re_\(UUID().uuidString.prefix(12).lowercased())")).result
    }

    public func lookupCharge(idempotencyKey: String) async throws -> ChargeLookup {
        if latency > .zero { try await Task.sleep(for: latency) }
        try await refuseDuringOutage(idempotencyKey)
        do {
            guard let row = try await ledger.query(
                "SELECT id, outcome, decline_code FROM fake_provider_operations WHERE idempotency_key = $1 AND kind = 'charge'", [idempotencyKey]).first
            else { return .notFound }
            if try row.decode(String.self, "outcome") == "succeeded" {
                return .succeeded(reference: "ch_" + (try row.decode(UUID.self, "id")).uuidString.lowercased())
            }
            return .declined(code: try row.decode(String?.self, "decline_code") ?? "declined")
        } catch let error as PostgresError where error.isTransient && !error.isUnavailable {
            throw TransientFailure("payment provider unavailable: \(error.message)")
        }
    }

    /// Throws a transient failure while the drill switch `fake_provider_outage.active` is on.
    private func refuseDuringOutage(_ key: String) async throws {
        let outage: Bool
        do {
            outage = try await ledger.query("SELECT active FROM fake_provider_outage WHERE id = 1").first?.decode(Bool.self, "active") ?? false
        } catch let error as PostgresError where error.isTransient && !error.isUnavailable {
            throw TransientFailure("payment provider unavailable: \(error.message)")
        }
        guard outage else { return }
        _ = try? await ledger.query("INSERT INTO fake_provider_refused_calls (idempotency_key) VALUES ($1)", [key])
        throw TransientFailure("payment provider unavailable (outage)")
    }

    /// Stores the first result for `key` and returns whatever is stored, and whether this
    /// call stored it.
    private func record(kind: String, key: String, orderId: UUID, amountCents: Int, currency: String, method: String?,
                        outcome: ProviderResult) async throws -> (result: ProviderResult, new: Bool) {
        if latency > .zero { try await Task.sleep(for: latency) }
        try await refuseDuringOutage(key)
        let (reference, succeeded, code): (String, Bool, String?) = switch outcome {
        case .succeeded(let reference): (reference, true, nil)
        case .declined(let code): ("dc_\(UUID().uuidString.prefix(12).lowercased())", false, code)
        }
        do {
            let id = UUID()
            let inserted = try await ledger.query(
                """
                INSERT INTO fake_provider_operations (id, idempotency_key, kind, order_id, amount_cents, currency, payment_method, outcome, decline_code)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (idempotency_key) DO NOTHING
                """,
                [id, key, kind, orderId, amountCents, currency, method, succeeded ? "succeeded" : "declined", code])
            _ = reference
            let new = inserted.affectedRows == 1
            let row = try await ledger.query(
                "SELECT id, outcome, decline_code FROM fake_provider_operations WHERE idempotency_key = $1", [key])[0]
            if try row.decode(String.self, "outcome") == "succeeded" {
                return (.succeeded(reference: (kind == "charge" ? "ch_" : "re_") + (try row.decode(UUID.self, "id")).uuidString.lowercased()), new)
            }
            return (.declined(code: try row.decode(String?.self, "decline_code") ?? "declined"), new)
        } catch let error as PostgresError where error.isTransient && !error.isUnavailable {
            throw TransientFailure("payment provider unavailable: \(error.message)")
        }
    }
}
