import Domain
import Foundation
import Postgres
import Store

/// Checks an email and password the one way Emporium does, for the API's token sign-in and
/// the consoles' cookie sign-in alike: the throttle per account and per client address
/// (admitted before bcrypt, so parallel guesses are counted), bcrypt against a decoy hash for
/// unknown emails (both paths cost the same), and only an active account passes.
struct PasswordSignIn: Sendable {
    let pool: PostgresPool
    let hasher: PasswordHasher
    /// A valid hash to verify against when the email is unknown.
    let decoyHash: String
    let throttle: SignInThrottle
    private let users = UserStore()

    init(pool: PostgresPool, hasher: PasswordHasher, decoyHash: String, throttle: SignInThrottle) {
        self.pool = pool
        self.hasher = hasher
        self.decoyHash = decoyHash
        self.throttle = throttle
    }

    /// The account's id and current role; 401 for a wrong email or password or an inactive
    /// account, 429 when throttled, 503 when hashing is saturated.
    func verify(email: String, password: String, clientAddress: String) async throws -> (userId: UUID, role: Role) {
        let found = try await users.credentials(email: email, on: pool)
        // The throttle's bucket is the account found, however its email was typed; an unknown
        // email has a bucket of its own, by its normalised form.
        let account =
            found.map { "user:" + $0.id.uuidString.lowercased() }
            ?? "email:" + TokenService.hashRefreshToken(email.lowercased().trimmingCharacters(in: .whitespaces))
        let attempt = try await throttle.admit(account: account, address: clientAddress)
        if attempt.delay > .zero { try await Task.sleep(for: attempt.delay) }
        let matches: Bool
        do {
            matches = try await hasher.verify(password, hash: found?.passwordHash ?? decoyHash)
        } catch {
            // Busy (503): not a failed sign-in.
            await throttle.withdraw(attempt)
            throw error
        }
        guard let found, matches, found.isActive, let role = found.role else {
            // The attempt stays recorded as a failure.
            throw APIError.unauthorized("email or password is incorrect")
        }
        try await throttle.succeeded(attempt)
        return (found.id, role)
    }
}
