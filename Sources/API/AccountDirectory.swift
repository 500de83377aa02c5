import Domain
import Foundation
import Postgres
import Store
import Synchronization

/// The current state of the accounts behind access tokens: an access token carries a role
/// and a subject as they were when it was issued, and the account may since have been
/// suspended, closed, demoted or signed out everywhere. Every authenticated request checks
/// the account here; the answer is cached for a few seconds (`ACCOUNT_CACHE_SECONDS`,
/// default 5) and dropped at once by this process when it changes the account, so a change
/// takes effect immediately on this replica and within the cache time on the others.
final class AccountDirectory: Sendable {
    /// What a request may rely on about its caller: the role now (not the one in the
    /// token), whether the account is active, and since when its tokens count.
    typealias Account = UserStore.Standing

    private struct Entry {
        let account: Account?
        let fetched: ContinuousClock.Instant
    }

    private let pool: PostgresPool
    private let ttl: Duration
    private let cache = Mutex<[UUID: Entry]>([:])
    /// Bounds memory: a cache this full is emptied (it refills from the database).
    private let capacity = 100_000

    init(pool: PostgresPool, ttl: Duration) {
        self.pool = pool
        self.ttl = ttl
    }

    /// The account with `id`, or nil when it does not exist.
    func account(_ id: UUID) async throws -> Account? {
        let now = ContinuousClock.now
        if ttl > .zero, let entry = cache.withLock({ $0[id] }), now - entry.fetched < ttl { return entry.account }
        let account = try await UserStore().standing(of: id, on: pool)
        cache.withLock { cache in
            if cache.count >= capacity { cache.removeAll() }
            cache[id] = Entry(account: account, fetched: now)
        }
        return account
    }

    /// Forgets what is cached about `id` (this process just changed the account).
    func invalidate(_ id: UUID) {
        _ = cache.withLock { $0.removeValue(forKey: id) }
    }
}
