import Crypto
import Foundation

/// Payment identities shared by the API and the payment worker.
package enum PaymentIds {
    /// The payment method of orders whose client confirms the payment itself.
    package static let manualMethod = "manual"

    /// The name of the payment provider the payment worker charges through, recorded on every
    /// payment row (also on a manual payment's row, which the API opens before the worker
    /// charges it). One provider per installation for now: the built-in fake.
    package static let providerName = "fake"

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
