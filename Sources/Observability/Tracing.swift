import Domain
import Foundation
import Instrumentation
import OTel
import ServiceContextModule
import ServiceLifecycle
import Tracing

/// Spans through swift-distributed-tracing: the API's request span, each worker's span per
/// message (a child of the span that published it), exported over OTLP/HTTP by swift-otel
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set. Without it spans are
/// no-ops, and the W3C `traceparent` still travels with every event and its trace id is on
/// every log line.
package enum EmporiumTracing {
    /// Bootstraps tracing for `serviceName`; returns the exporter's service to run with the
    /// process's others, or nil when no OTLP endpoint is configured. Call once, first thing.
    package static func bootstrap(serviceName: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (any Service)? {
        guard environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.logs.enabled = false  // logs: JSON lines (EmporiumLogging)
        configuration.metrics.enabled = false  // metrics: Prometheus (EmporiumMetrics)
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        let backend = try OTel.makeTracingBackend(configuration: configuration)  // OTEL_* variables override
        InstrumentationSystem.bootstrap(backend.factory)
        return backend.service
    }

    /// The W3C `traceparent` of the current span (so what is published next is its child);
    /// nil when no tracer is configured.
    package static func currentTraceparent() -> String? {
        guard let context = ServiceContext.current else { return nil }
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: DictionaryInjector())
        return headers["traceparent"]
    }

    /// A service context continuing the trace of `traceparent` (from an event or a header).
    package static func context(continuing traceparent: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        if let traceparent {
            InstrumentationSystem.instrument.extract(["traceparent": traceparent], into: &context, using: DictionaryExtractor())
        }
        return context
    }
}

private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// W3C trace context: accepts a valid incoming `traceparent` or starts a new trace.
package enum TraceContext {
    /// A valid W3C `traceparent`, lower-cased; nil for anything else.
    package static func parse(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: "-")
        guard parts.count == 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
            parts.allSatisfy({ $0.allSatisfy(\.isHexDigit) }), parts[1] != String(repeating: "0", count: 32)
        else { return nil }
        return header.lowercased()
    }

    /// A new trace with a random id, sampled.
    package static func new() -> String {
        // Three draws of 64 bits, not one per hex digit: each draw is a getrandom(2) call, and
        // 48 of them per placed order were 4% of the API's CPU (profile of 2026-12-06).
        var generator = SystemRandomNumberGenerator()
        var high: UInt64 = 0, low: UInt64 = 0, span: UInt64 = 0
        while high | low == 0 { (high, low) = (generator.next(), generator.next()) }  // an all-zero id is invalid
        while span == 0 { span = generator.next() }  // so is an all-zero span id
        return "00-\(hex(high))\(hex(low))-\(hex(span))-01"
    }

    /// `value` as 16 lower-case hex digits.
    private static func hex(_ value: UInt64) -> String {
        withUnsafeBytes(of: value.bigEndian) { $0.hexEncoded }
    }
}
