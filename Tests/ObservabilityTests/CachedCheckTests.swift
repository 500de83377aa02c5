import Foundation
import Observability
import Synchronization
import Testing

/// `/ready`'s checks: bounded in time and in how often they touch a peer.
@Suite("Cached readiness checks", .timeLimit(.minutes(1)))
struct CachedCheckTests {
    /// Counts runs of a check body.
    final class Runs: Sendable {
        private let count = Mutex(0)
        func add() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }
    }

    @Test("many calls within the time-to-live share one run of the check")
    func cachedWithinTTL() async {
        let runs = Runs()
        let check = CachedCheck(ttl: .seconds(30)) {
            runs.add()
            return .init(ok: true, detail: "ok")
        }
        for _ in 0..<100 { #expect(await check.result().ok) }
        #expect(runs.value == 1)
    }

    @Test("concurrent callers share the run in progress")
    func singleFlight() async {
        let runs = Runs()
        let check = CachedCheck(ttl: .seconds(30), deadline: .seconds(10)) {
            runs.add()
            try? await Task.sleep(for: .milliseconds(300))
            return .init(ok: true, detail: "ok")
        }
        await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 { group.addTask { await check.result().ok } }
            for await ok in group { #expect(ok) }
        }
        #expect(runs.value == 1)
    }

    @Test("a check that hangs is answered as failed at its deadline, and the hung run is not started again meanwhile")
    func hungPeer() async {
        let runs = Runs()
        let check = CachedCheck(ttl: .milliseconds(100), deadline: .milliseconds(300)) {
            runs.add()
            try? await Task.sleep(for: .seconds(20))  // a frozen peer
            return .init(ok: true, detail: "ok")
        }
        for _ in 0..<3 {
            let started = ContinuousClock.now
            let result = await check.result()
            #expect(!result.ok)
            #expect(result.detail.contains("no answer"))
            // Answered at the deadline, not when the peer wakes (20 s): the bound only has to
            // tell the two apart, with room for a loaded machine's scheduling.
            #expect(ContinuousClock.now - started < .seconds(10))
        }
        #expect(runs.value == 1)
    }

    @Test("a throwing probe reads as the given failure, without its error text")
    func failure() async {
        struct Refused: Error {}
        let check = CachedCheck(failure: "unavailable") { throw Refused() }
        let result = await check.result()
        #expect(!result.ok)
        #expect(result.detail == "unavailable")
    }
}
