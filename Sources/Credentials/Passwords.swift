import Crypto
import Domain
import Foundation
import HummingbirdBcrypt

/// bcrypt for passwords, for the API and the operator CLI alike.
///
/// bcrypt reads at most 72 bytes; a longer password (allowed up to 128 characters, which can
/// be 512 bytes) is first reduced to its SHA-256 in hex, so every byte of it counts.
package enum Passwords {
    /// Passwords accepted: 8…128 characters (Unicode code points).
    package static let lengths = 8...128

    /// The bcrypt hash of `password` at `cost`.
    package static func hash(_ password: String, cost: UInt8) -> String {
        Bcrypt.hash(bcryptInput(password), cost: cost)
    }

    /// Whether `password` matches `hash`.
    package static func verify(_ password: String, hash: String) -> Bool {
        Bcrypt.verify(bcryptInput(password), hash: hash)
    }

    static func bcryptInput(_ password: String) -> String {
        guard password.utf8.count > 72 else { return password }
        return SHA256.hash(data: Data(password.utf8)).hexEncoded
    }
}
