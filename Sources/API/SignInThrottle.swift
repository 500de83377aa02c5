import Foundation
import Postgres
import Store
import Synchronization

/// Sign-in throttling that cannot be raced and cannot be turned against the account's owner.
///
/// Every attempt is first admitted: attempts for one (account, address) pair take turns (in
/// this process without holding a database session while they wait, across replicas through
/// an advisory lock), and in one short transaction the recent failures are counted and, if
/// the attempt may go on, a failure is recorded for it at once. A correct password then
/// withdraws that record (and the pair's earlier failures); a wrong one leaves it. So however
/// many guesses arrive at once, at most `perPair` of them are ever checked per (account,
/// address) within the window, and at most `perAddress` per address across accounts; the rest
/// are answered 429 with `Retry-After` without touching bcrypt.
///
/// Nothing refuses the right password solely because others failed: failures from other
/// addresses only slow the account down (a growing delay once they pass `slowdownAfter`,
/// at most 5 s), so an attacker cannot lock an owner out. The address is the one
/// ``ClientAddressMiddleware`` decided (`TRUSTED_PROXIES`).
struct SignInThrottle: Sendable {
    /// An admitted attempt, recorded as a failure until it succeeds.
    struct Attempt: Sendable {
        let failureId: Int
        let account: String
        let address: String
        /// How long to hold the attempt back (failures of the account from elsewhere).
        let delay: Duration
    }

    let pool: PostgresPool
    private let users = UserStore()
    /// Attempts of one pair wait here, not on a pooled session.
    let turns = KeyedTurns()
    /// Failures per (account, address) within `window` (`LOGIN_MAX_FAILURES_PER_ACCOUNT`, 5).
    var perPair = 5
    /// Failures per address across accounts (`LOGIN_MAX_FAILURES_PER_ADDRESS`, 20).
    var perAddress = 20
    /// `LOGIN_THROTTLE_WINDOW_SECONDS` (900).
    var window: Duration = .seconds(900)
    /// Failures of an account from all addresses after which each attempt is delayed
    /// (`LOGIN_SLOWDOWN_AFTER`, 10).
    var slowdownAfter = 10

    /// Admits an attempt or throws 429 with `Retry-After`.
    func admit(account: String, address: String) async throws -> Attempt {
        let (failureId, byAccount) = try await turns.inTurn(account + "|" + address) {
            try await pool.withTransaction { db -> (Int, Int) in
                // Another replica's attempt for the same pair waits in the store's advisory lock;
                // it lasts until this short commit. (The address's count across accounts is not
                // locked: it may be off by the attempts in flight, which the pair limit bounds.)
                let counts = try await users.failureCounts(account: account, address: address, window: window, on: db)
                let wait: Int?
                if counts.byPair >= perPair {
                    wait = counts.pairWait
                } else if counts.byAddress >= perAddress {
                    wait = counts.addressWait
                } else {
                    wait = nil
                }
                if let wait {
                    let seconds = max(1, wait)
                    throw APIError(
                        status: .tooManyRequests, detail: "too many failed sign-ins; try again in \(seconds) s", headers: [.retryAfter: String(seconds)])
                }
                return (try await users.recordFailure(account: account, address: address, on: db), counts.byAccount)
            }
        }
        return Attempt(failureId: failureId, account: account, address: address, delay: Self.delay(failures: byAccount, after: slowdownAfter))
    }

    /// 0 up to `after` failures, then half a second more per failure, at most 5 s.
    static func delay(failures: Int, after: Int) -> Duration {
        guard failures >= after else { return .zero }
        return min(.milliseconds(500 * (failures - after + 1)), .seconds(5))
    }

    /// The password was right: the attempt and the pair's earlier failures are forgotten.
    func succeeded(_ attempt: Attempt) async throws {
        try await users.clearFailures(account: attempt.account, address: attempt.address, on: pool)
    }

    /// The attempt was never checked (the server was busy): it is not a failure.
    func withdraw(_ attempt: Attempt) async {
        try? await users.withdrawFailure(attempt.failureId, on: pool)
    }
}

/// One at a time per key, in arrival order, without blocking a thread: the waiters are
/// suspended tasks. Keys with nobody waiting are forgotten.
final class KeyedTurns: Sendable {
    private let waiting = Mutex<[String: [CheckedContinuation<Void, Never>]]>([:])

    /// Runs `body` when no other call with `key` is running.
    func inTurn<T>(_ key: String, _ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let goNow = waiting.withLock { waiting -> Bool in
                if var queue = waiting[key] {
                    queue.append(continuation)
                    waiting[key] = queue
                    return false
                }
                waiting[key] = []
                return true
            }
            if goNow { continuation.resume() }
        }
        defer {
            let next = waiting.withLock { waiting -> CheckedContinuation<Void, Never>? in
                guard var queue = waiting[key], !queue.isEmpty else {
                    waiting[key] = nil
                    return nil
                }
                let first = queue.removeFirst()
                waiting[key] = queue
                return first
            }
            next?.resume()
        }
        return try await body()
    }
}
