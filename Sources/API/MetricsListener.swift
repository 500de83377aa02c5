import HTTPCommon
import Hummingbird
import Logging

/// `GET /metrics` (Prometheus text) on a listener of its own, `METRICS_HOST:METRICS_PORT`
/// (loopback by default): order volumes and pool use are for the operator's scraper, not for
/// the public port. The workers serve theirs on their health port the same way.
enum MetricsListener {
    static func application(host: String, port: Int, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        MetricsEndpoint.register(on: router)
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "emporium-api-metrics"), logger: logger)
    }
}
