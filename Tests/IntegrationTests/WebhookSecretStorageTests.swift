import Domain
import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// Merchant webhook signing secrets at rest, against a migrated database: sealed when written,
/// one stored in clear before the key was set sealed afterwards, and a secret that cannot be
/// opened reported as the reason instead of signing with nothing.
@Suite("Webhook secrets at rest", .timeLimit(.minutes(1)))
struct WebhookSecretStorageTests {
    @Test("secrets are sealed when stored; clear ones are sealed later and still sign; without the key or with another the lease says why")
    func sealedAtRest() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 2)
            let seal = try SecretSeal(base64Key: SecretSealTestKeys.make())
            let store = WebhookStore(seal: seal)
            func storedSecret(_ id: UUID) async throws -> String {
                try await pool.query("SELECT secret FROM webhook_endpoints WHERE id = $1", [id])[0].decode(String.self, "secret")
            }

            // Written through the store: sealed, and rotation seals the new one too.
            let (sealedId, admin) = (UUID(), UUID())
            try await pool.query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, role) VALUES ($1, $2, 'x', 'A', 'D', 'ADMIN')",
                [admin, "\(admin)@example.com"])
            _ = try await store.create(
                id: sealedId, url: "https://hooks.example.com/a", eventTypes: ["order.*"], enabled: true, secret: "whsec_new", createdBy: admin, on: pool)
            #expect(SecretSeal.isSealed(try await storedSecret(sealedId)))
            _ = try await store.rotateSecret(sealedId, to: "whsec_rotated", overlap: .seconds(60), on: pool)
            #expect(SecretSeal.isSealed(try await storedSecret(sealedId)))

            // Stored in clear before the key was configured: sealed by the next pass, once.
            let clearId = UUID()
            try await pool.query(
                "INSERT INTO webhook_endpoints (id, url, event_types, secret) VALUES ($1, 'https://hooks.example.com/b', ARRAY['order.*'], 'whsec_legacy')",
                [clearId])
            #expect(try await store.sealStoredSecrets(on: pool) == 1)
            #expect(SecretSeal.isSealed(try await storedSecret(clearId)))
            #expect(try await store.sealStoredSecrets(on: pool) == 0)

            // What signs is the secret itself (and, during the overlap, the previous one).
            for endpoint in [sealedId, clearId] {
                try await pool.query(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, body, status) VALUES ($1, $2, $3, 'order.placed', '{}', 'PENDING')",
                    [UUID(), endpoint, UUID()])
            }
            let due = try await store.lease(limit: 10, lease: .zero, on: pool)
            #expect(Set(due.map(\.endpointId)) == [sealedId, clearId])
            #expect(due.first { $0.endpointId == clearId }?.secrets == ["whsec_legacy"])
            #expect(due.first { $0.endpointId == sealedId }?.secrets == ["whsec_rotated", "whsec_new"])
            #expect(due.allSatisfy { $0.secretProblem == nil })

            // The leases (of zero seconds) run out; without the key, or with another, nothing opens.
            for (other, reason) in [(nil, "WEBHOOK_SECRETS_KEY is not set"), (try SecretSeal(base64Key: SecretSealTestKeys.make()), "does not open")] {
                var again: [WebhookStore.Due] = []
                #expect(
                    await TestEnvironment.eventually(timeout: .seconds(10)) {
                        again = (try? await WebhookStore(seal: other).lease(limit: 10, lease: .zero, on: pool)) ?? []
                        return again.count == 2
                    })
                #expect(again.allSatisfy { $0.secrets.isEmpty && ($0.secretProblem ?? "").contains(reason) }, "\(again.map(\.secretProblem))")
            }
            await pool.close()
        }
    }
}

/// Random keys for the sealing tests.
enum SecretSealTestKeys {
    static func make() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
}
