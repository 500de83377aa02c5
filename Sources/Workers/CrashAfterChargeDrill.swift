import Foundation
import Payments

/// A drill for any provider (`PAYMENT_DRILL_CRASH_AFTER_CHARGE_CENTS`): the payment worker
/// dies right after the provider charged an order of exactly that many cents, before it can
/// record the charge, the way a crashing process leaves a real charge behind. Only the first
/// charge under a key crashes (the provider is asked first), so a retry records it. Never set
/// where customers order.
struct CrashAfterChargeDrill: PaymentProvider {
    let inner: any PaymentProvider
    let amountCents: Int

    var name: String { inner.name }
    var captureMode: CaptureMode { inner.captureMode }

    func charge(_ request: ChargeRequest) async throws -> ProviderResult {
        guard request.amountCents == amountCents else { return try await inner.charge(request) }
        let before = try await inner.lookupCharge(idempotencyKey: request.idempotencyKey)
        let result = try await inner.charge(request)
        switch (before, result) {
        case (.notFound, .succeeded), (.notFound, .authorized):
            // Deliberate: the drill. Reachable only with PAYMENT_DRILL_CRASH_AFTER_CHARGE_CENTS set.
            fatalError("payment drill: simulated crash after charging \(request.idempotencyKey)")
        default:
            return result
        }
    }

    func refund(_ request: RefundRequest) async throws -> ProviderResult { try await inner.refund(request) }
    func lookupCharge(idempotencyKey: String) async throws -> ChargeLookup { try await inner.lookupCharge(idempotencyKey: idempotencyKey) }
    func chargeState(reference: String) async throws -> ChargeLookup { try await inner.chargeState(reference: reference) }
    func capture(reference: String, idempotencyKey: String) async throws -> ProviderResult {
        try await inner.capture(reference: reference, idempotencyKey: idempotencyKey)
    }
    func releaseAuthorization(reference: String, idempotencyKey: String) async throws {
        try await inner.releaseAuthorization(reference: reference, idempotencyKey: idempotencyKey)
    }
    func openClientIntent(_ request: ChargeRequest) async throws -> ClientIntent { try await inner.openClientIntent(request) }
    func refunds(reference: String) async throws -> [ProviderRefund] { try await inner.refunds(reference: reference) }
    func recentCharges(since: Date, limit: Int) async throws -> [ProviderCharge] { try await inner.recentCharges(since: since, limit: limit) }
}
