import API
import Foundation
import Observability
import Settings

EmporiumLogging.bootstrap()
EmporiumMetrics.bootstrap()

// Thin entry point: configuration from the environment, then the application from the API
// library. Configuration errors exit with status 2 and a message.
do {
    let configuration = try APIConfiguration.fromEnvironment()
    let tracing = try EmporiumTracing.bootstrap(serviceName: APIConfiguration.executableName)
    let app = try await buildApplication(configuration: configuration, extraServices: tracing.map { [$0] } ?? [])
    try await app.runService()
} catch let error as ConfigurationError {
    FileHandle.standardError.write(Data("\(APIConfiguration.executableName): \(error)\n".utf8))
    exit(2)
} catch {
    FileHandle.standardError.write(Data("\(APIConfiguration.executableName): \(error)\n".utf8))
    exit(1)
}
