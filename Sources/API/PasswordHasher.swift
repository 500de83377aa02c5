import Credentials
import Foundation
import Synchronization

/// bcrypt, deliberately slow, on a bounded number of threads in two lanes, so password work
/// can never starve the API: sign-in verification gets every core (`ProcessInfo`'s active
/// processor count) with a waiting line of 64, hashing new passwords (registration, password
/// changes) one thread with a line of 8. A request that finds its lane's line full is
/// answered 503 with `Retry-After` at once instead of queueing without end: a burst of
/// registrations slows registrations, not sign-ins.
struct PasswordHasher: Sendable {
    /// bcrypt cost (`BCRYPT_COST`); each step doubles the work.
    let cost: UInt8
    let verifying: WorkGate
    let hashing: WorkGate

    init(
        cost: UInt8, verifying: WorkGate = WorkGate(concurrency: max(1, ProcessInfo.processInfo.activeProcessorCount), queueLimit: 64),
        hashing: WorkGate = WorkGate(concurrency: 1, queueLimit: 8)
    ) {
        self.cost = cost
        self.verifying = verifying
        self.hashing = hashing
    }

    /// A new hash; 503 when too many passwords are being hashed already.
    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await hashing.run { Passwords.hash(password, cost: cost) }
    }

    /// Whether `password` matches `hash`; 503 when too many sign-ins are being checked already.
    func verify(_ password: String, hash: String) async throws -> Bool {
        try await verifying.run { Passwords.verify(password, hash: hash) }
    }
}

/// At most `concurrency` jobs at once, at most `queueLimit` waiting; beyond that a caller is
/// refused at once (`503`, `Retry-After`). Jobs run on dispatch threads, never on Swift's
/// cooperative pool.
final class WorkGate: Sendable {
    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    let concurrency: Int
    let queueLimit: Int
    private let state = Mutex(State())

    init(concurrency: Int, queueLimit: Int) {
        self.concurrency = max(1, concurrency)
        self.queueLimit = max(0, queueLimit)
    }

    /// Runs `work` when a slot is free; throws a 503 when the line is full.
    func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        try await enter()
        defer { leave() }
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }

    private func enter() async throws {
        enum Decision { case go, wait, refuse }
        var decision = Decision.refuse
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            decision = state.withLock { state in
                if state.running < concurrency {
                    state.running += 1
                    return .go
                }
                if state.waiting.count < queueLimit {
                    state.waiting.append(continuation)
                    return .wait
                }
                return .refuse
            }
            if decision != .wait { continuation.resume() }
        }
        if decision == .refuse {
            throw APIError(status: .serviceUnavailable, detail: "the server is busy checking passwords; retry shortly", headers: [.retryAfter: "2"])
        }
    }

    /// Hands the slot to the next in line, or frees it.
    private func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
