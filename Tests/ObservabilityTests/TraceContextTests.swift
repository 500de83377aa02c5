import Foundation
import Observability
import Testing

@Suite("W3C trace context", .timeLimit(.minutes(10)))
struct TraceContextTests {
    @Test("a new trace is a valid, sampled traceparent with a random trace id and span id")
    func newTraces() {
        var traceIds = Set<Substring>(), spanIds = Set<Substring>()
        var digitsSeen = Set<Character>()
        for _ in 0..<5_000 {
            let traceparent = TraceContext.new()
            #expect(TraceContext.parse(traceparent) == traceparent, "\(traceparent)")
            let parts = traceparent.split(separator: "-")
            #expect(parts.count == 4 && parts[0] == "00" && parts[3] == "01", "\(traceparent)")
            #expect(parts[1].count == 32 && parts[2].count == 16, "\(traceparent)")
            #expect(parts[2] != "0000000000000000")
            traceIds.insert(parts[1])
            spanIds.insert(parts[2])
            digitsSeen.formUnion(parts[1])
            digitsSeen.formUnion(parts[2])
        }
        #expect(traceIds.count == 5_000)
        #expect(spanIds.count == 5_000)
        #expect(digitsSeen == Set("0123456789abcdef"))
    }

    @Test("an incoming traceparent is kept, lower-cased; a malformed or all-zero one is refused")
    func parsing() {
        let valid = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"
        #expect(TraceContext.parse(valid) == valid.lowercased())
        #expect(TraceContext.parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01") == nil)
        #expect(TraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7") == nil)
        #expect(TraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01") == nil)
        #expect(TraceContext.parse(nil) == nil)
    }
}
