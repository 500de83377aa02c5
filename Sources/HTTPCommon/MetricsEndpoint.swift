import Hummingbird
import Observability

/// `GET /metrics` in the Prometheus text format, as the API's metrics listener and each
/// worker's health server serve it.
package enum MetricsEndpoint {
    /// Adds `GET /metrics` to `router`.
    package static func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: EmporiumMetrics.render())))
        }
    }
}
