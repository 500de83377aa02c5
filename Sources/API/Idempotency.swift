import Foundation
import Logging
import Postgres
import Store
import Synchronization

/// `Idempotency-Key` handling for `POST /api/v1/orders` over ``IdempotencyStore``: claims go
/// through the store; a release that fails because the database is unavailable waits in
/// ``PendingReleases`` and is retried until it goes through, however long the outage lasts.
struct IdempotencyKeys: Sendable {
    let pool: PostgresPool
    let store = IdempotencyStore()
    let releases: PendingReleases

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.releases = PendingReleases(pool: pool, logger: logger)
    }

    /// Claims `key` for the user's request with body hash `requestHash`.
    func claim(userId: UUID, key: String, requestHash: String) async throws -> IdempotencyStore.Claim {
        try await store.claim(userId: userId, key: key, requestHash: requestHash, on: pool)
    }

    /// Stores the response in the caller's transaction (see ``IdempotencyStore/complete(_:status:body:on:)``).
    func complete(_ token: IdempotencyStore.Token, status: Int, body: Data, on db: PostgresConnection) async throws -> String {
        try await store.complete(token, status: status, body: body, on: db)
    }

    /// Gives the key back after a failed attempt, so the client may retry with it.
    func release(_ token: IdempotencyStore.Token) async {
        if (try? await store.release(token, on: pool)) != nil { return }
        releases.add(token)
    }
}

/// Releases of idempotency claims that failed because the database was unavailable, retried
/// in the background until they go through. Bounded: past `limit`, further ones are left to
/// retention, which deletes claims left IN_FLIGHT (`IDEMPOTENCY_ABANDONED_SECONDS`).
final class PendingReleases: Sendable {
    private let pending = Mutex<Set<IdempotencyStore.Token>>([])
    private let worker = Mutex<Task<Void, Never>?>(nil)
    private let pool: PostgresPool
    private let store = IdempotencyStore()
    private let logger: Logger
    let limit = 10_000

    init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    func add(_ token: IdempotencyStore.Token) {
        let accepted = pending.withLock { pending -> Bool in
            guard pending.count < limit else { return false }
            pending.insert(token)
            return true
        }
        if !accepted { logger.warning("too many idempotency keys waiting for release; retention will clear the rest") }
        worker.withLock { worker in
            guard worker == nil else { return }
            worker = Task { [weak self] in await self?.drain() }
        }
    }

    private func drain() async {
        var delay: Duration = .milliseconds(500)
        while true {
            try? await Task.sleep(for: delay)
            let batch = pending.withLock { Array($0) }
            var released = 0
            for token in batch {
                guard (try? await store.release(token, on: pool)) != nil else { break }
                _ = pending.withLock { $0.remove(token) }
                released += 1
            }
            let done = worker.withLock { worker -> Bool in
                let empty = pending.withLock { $0.isEmpty }
                if empty { worker = nil }
                return empty
            }
            if done { return }
            delay = released > 0 ? .milliseconds(500) : min(delay * 2, .seconds(5))
        }
    }
}
