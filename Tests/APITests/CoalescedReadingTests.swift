import Synchronization
import Testing

@testable import API

/// The overview's shared reading: callers share a read; never a value read before the caller
/// asked; reads spaced by the gap.
@Suite("A reading shared by the open overviews", .timeLimit(.minutes(1)))
struct CoalescedReadingTests {
    /// Counts reads and can hold one open until released, so a test can ask while it runs.
    final class Reader: Sendable {
        private struct State {
            var reads = 0
            var starts: [ContinuousClock.Instant] = []
            var held: CheckedContinuation<Void, Never>?
            var holdNext = false
        }
        private let state = Mutex(State())

        /// Reads so far.
        var reads: Int { state.withLock { $0.reads } }
        /// When each read started.
        var starts: [ContinuousClock.Instant] { state.withLock { $0.starts } }

        /// Makes the next read wait for ``release()``.
        func holdNextRead() { state.withLock { $0.holdNext = true } }

        /// Lets a held read finish; false while none is held yet.
        func release() -> Bool {
            guard
                let held = state.withLock({ current -> CheckedContinuation<Void, Never>? in
                    defer { current.held = nil }
                    return current.held
                })
            else { return false }
            held.resume()
            return true
        }

        /// A read: its number, 1 for the first.
        func read() async -> Int {
            let (number, hold) = state.withLock { current -> (Int, Bool) in
                current.reads += 1
                current.starts.append(.now)
                defer { current.holdNext = false }
                return (current.reads, current.holdNext)
            }
            if hold { await withCheckedContinuation { continuation in state.withLock { $0.held = continuation } } }
            return number
        }
    }

    @Test("fifty callers that ask while a read runs share the next read, not the one that began before they asked")
    func callersShareTheNextRead() async throws {
        let reader = Reader()
        let reading = CoalescedReading(gap: .milliseconds(1)) { await reader.read() }
        reader.holdNextRead()
        let first = Task { await reading.value() }
        // Wait, with a deadline, until the first read has started and is held.
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while reader.reads == 0 {
            #expect(clock.now < deadline, "the first read never started")
            if clock.now >= deadline { return }
            await Task.yield()
        }
        let later = (1...50).map { _ in Task { await reading.value() } }
        while reading.asked < 51 {
            #expect(clock.now < deadline, "the fifty callers never asked")
            if clock.now >= deadline { return }
            await Task.yield()
        }
        while !reader.release() {
            #expect(clock.now < deadline, "the first read was never held")
            if clock.now >= deadline { return }
            await Task.yield()
        }
        #expect(await first.value == 1)
        // All asked while read 1 ran: they share read 2, which began after they asked.
        var values: [Int] = []
        for task in later { values.append(await task.value) }
        #expect(values == Array(repeating: 2, count: 50))
        #expect(reader.reads == 2)
    }

    @Test("one caller after another: each gets a new read, and reads start at least the gap apart")
    func readsAreSpaced() async {
        let reader = Reader()
        let gap = Duration.milliseconds(150)
        let reading = CoalescedReading(gap: gap) { await reader.read() }
        for expected in 1...4 { #expect(await reading.value() == expected) }
        let starts = reader.starts
        #expect(starts.count == 4)
        for (earlier, later) in zip(starts, starts.dropFirst()) { #expect(later - earlier >= gap) }
    }
}
