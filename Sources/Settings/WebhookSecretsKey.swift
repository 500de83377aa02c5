import Domain

extension EnvironmentReader {
    /// `WEBHOOK_SECRETS_KEY` (32 random bytes in base64): seals merchant webhook signing secrets
    /// in the database. Read by the API (which stores them) and the notification worker (which
    /// signs with them); nil when unset or empty (secrets are then stored in clear).
    package func webhookSecretSeal() throws -> SecretSeal? {
        guard let value = string("WEBHOOK_SECRETS_KEY"), !value.isEmpty else { return nil }
        do {
            return try SecretSeal(base64Key: value)
        } catch let failure as SecretSeal.Failure {
            throw ConfigurationError(failure.description)
        }
    }
}
