import Crypto
import Foundation

/// Seals a secret that the database must keep but that whoever reads the database (a backup,
/// a replica, a leaked dump) must not learn: merchant webhook signing secrets, which Emporium
/// needs in clear to sign with and so cannot hash. AES-256-GCM under a key from configuration
/// (`WEBHOOK_SECRETS_KEY`), bound to the row it belongs to (a sealed value copied to another
/// endpoint does not open there); stored as `sealed:v1:<base64 of nonce, ciphertext, tag>`.
public struct SecretSeal: Sendable {
    /// What marks a sealed value; a value without it was stored before sealing was configured.
    public static let prefix = "sealed:v1:"

    /// Why a secret could not be sealed or opened (never contains the secret).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    private let key: SymmetricKey

    /// The configured key: 32 random bytes in base64 (`openssl rand -base64 32`).
    public init(base64Key: String) throws {
        guard let data = Data(base64Encoded: base64Key.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
            throw Failure(description: "WEBHOOK_SECRETS_KEY must be 32 random bytes in base64 (openssl rand -base64 32)")
        }
        key = SymmetricKey(data: data)
    }

    /// Whether `stored` is a sealed value.
    public static func isSealed(_ stored: String) -> Bool { stored.hasPrefix(prefix) }

    /// `secret` sealed for the row `owner` (its id), ready to store.
    public func seal(_ secret: String, for owner: UUID) throws -> String {
        guard let combined = try AES.GCM.seal(Data(secret.utf8), using: key, authenticating: Self.context(owner)).combined else {
            throw Failure(description: "the secret could not be sealed")
        }
        return Self.prefix + combined.base64EncodedString()
    }

    /// The secret inside `stored`, sealed for `owner` under this key.
    public func open(_ stored: String, for owner: UUID) throws -> String {
        guard Self.isSealed(stored), let combined = Data(base64Encoded: String(stored.dropFirst(Self.prefix.count))) else {
            throw Failure(description: "the stored secret is not a sealed value")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: combined)
            return String(decoding: try AES.GCM.open(box, using: key, authenticating: Self.context(owner)), as: UTF8.self)
        } catch {
            throw Failure(description: "the stored secret does not open with WEBHOOK_SECRETS_KEY (another key sealed it, or it was altered)")
        }
    }

    /// What signs: a sealed value opened with `seal`, a value stored in clear as it is.
    public static func reveal(_ stored: String, for owner: UUID, with seal: SecretSeal?) throws -> String {
        guard isSealed(stored) else { return stored }
        guard let seal else { throw Failure(description: "the stored secret is sealed and WEBHOOK_SECRETS_KEY is not set") }
        return try seal.open(stored, for: owner)
    }

    private static func context(_ owner: UUID) -> Data { Data("emporium-secret:\(owner.uuidString.lowercased())".utf8) }
}
