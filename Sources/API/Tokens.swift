import Crypto
import Domain
import Foundation
import JWTKit

/// Issues and verifies HS256 access tokens and opaque refresh tokens.
package struct TokenService: Sendable {
    struct AccessClaims: JWTPayload {
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        var iss: IssuerClaim
        var role: String

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            guard iss.value == TokenService.issuer else { throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "wrong issuer") }
        }
    }

    static let issuer = "emporium"
    /// Access token lifetime.
    package let accessTokenLifetime: Duration
    private let keys: JWTKeyCollection

    /// Creates the service with an HMAC secret of at least 32 bytes.
    package init(secret: String, accessTokenLifetime: Duration = .seconds(15 * 60)) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
        self.accessTokenLifetime = accessTokenLifetime
    }

    /// A signed access token for `userId` with `role`.
    package func accessToken(userId: UUID, role: Role, now: Date = Date()) async throws -> String {
        let lifetime = Double(accessTokenLifetime.components.seconds)
        return try await keys.sign(
            AccessClaims(
                sub: .init(value: userId.uuidString.lowercased()), exp: .init(value: now.addingTimeInterval(lifetime)),
                iat: .init(value: now), iss: .init(value: Self.issuer), role: role.rawValue))
    }

    /// The identity in a valid token; nil for a bad signature, an expired token or garbage.
    package func verify(_ token: String) async -> Identity? {
        guard let claims = try? await keys.verify(token, as: AccessClaims.self),
            let userId = UUID(uuidString: claims.sub.value), let role = Role(rawValue: claims.role)
        else { return nil }
        return Identity(userId: userId, role: role, issuedAt: claims.iat.value)
    }

    /// A new random refresh token (256 bits, base64url) and the hash stored for it.
    package static func newRefreshToken() -> (token: String, hash: String) {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let token = bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(
            of: "=", with: "")
        return (token, hashRefreshToken(token))
    }

    /// SHA-256 of a refresh token, hex; the table never stores the token itself.
    package static func hashRefreshToken(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).hexEncoded
    }
}
