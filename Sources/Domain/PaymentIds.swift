import Crypto
import Foundation

/// Payment identities shared by the API and the payment worker.
package enum PaymentIds {
    /// The payment method of orders whose client confirms the payment itself.
    package static let manualMethod = "manual"

    /// The built-in fake provider's name, as recorded on payment rows.
    package static let fakeProviderName = "fake"
    /// Stripe's name, as recorded on payment rows.
    package static let stripeProviderName = "stripe"

    /// The id of a refund: the payment's full refund on cancellation is derived from the
    /// payment alone (one per payment), any other refund from its request.
    package static func cancellationRefundId(for paymentId: UUID) -> UUID { derived("refund:\(paymentId.uuidString.lowercased())") }

    /// The payment id of an order: a name-based UUID, stable across retries and processes,
    /// and the payment provider's idempotency key.
    package static func paymentId(for orderId: UUID) -> UUID { derived("payment:\(orderId.uuidString.lowercased())") }

    /// A version-5-style UUID from SHA-256 of `name`: the same name gives the same id everywhere.
    package static func derived(_ name: String) -> UUID {
        var bytes = Array(SHA256.hash(data: Data(name.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0f) | 0x50
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
