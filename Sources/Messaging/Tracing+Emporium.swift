import Foundation
import Instrumentation
import OTel
import ServiceLifecycle
import ServiceContextModule
import Tracing

/// Spans through swift-distributed-tracing: the API's request span, each worker's span per
/// message (a child of the span that published it), exported over OTLP/HTTP by swift-otel
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set. Without it spans are
/// no-ops, and the W3C `traceparent` still travels with every event and its trace id is on
/// every log line.
public enum EmporiumTracing {
    /// Bootstraps tracing for `serviceName`; returns the exporter's service to run with the
    /// process's others, or nil when no OTLP endpoint is configured. Call once, first thing.
    public static func bootstrap(serviceName: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (any Service)? {
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
    public static func currentTraceparent() -> String? {
        guard let context = ServiceContext.current else { return nil }
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: DictionaryInjector())
        return headers["traceparent"]
    }

    /// A service context continuing the trace of `traceparent` (from an event or a header).
    public static func context(continuing traceparent: String?) -> ServiceContext {
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
