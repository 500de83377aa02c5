import API
import TestSupport

/// An API configuration for in-process tests: the local servers, an ephemeral port, a fixed
/// test secret and the cheapest bcrypt cost.
func apiTestConfiguration() throws -> APIConfiguration {
    var config = APIConfiguration(postgres: try TestEnvironment.postgres(), amqp: try TestEnvironment.amqp())
    config.port = 0
    config.logLevel = .error
    config.jwtSecret = String(repeating: "k", count: 32)
    config.bcryptCost = 4
    config.metricsPort = 0  // an ephemeral port: tests run many APIs at once
    return config
}
