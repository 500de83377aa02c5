import Foundation
import TestSupport

/// The real `emporium-api` executable as a child process on a free port, against a stack's
/// database and namespace, logging to a file: for tests that read its log lines.
final class APIProcess: @unchecked Sendable {
    let port: Int
    /// The separate listener of `GET /metrics`.
    let metricsPort: Int
    private let process = Process()
    private let logFile: URL

    /// Starts the API for `stack`; `defaultPolicy` declares the queues with the production
    /// retry policy (as the stack and the workers must then too).
    init(stack: Stack, defaultPolicy: Bool = false, extraEnvironment: [String: String] = [:]) async throws {
        port = try TestEnvironment.freePort()
        metricsPort = try TestEnvironment.freePort()
        var environment = stack.processEnvironment
        environment["HTTP_PORT"] = String(port)
        environment["METRICS_PORT"] = String(metricsPort)
        environment["REGISTRATIONS_PER_ADDRESS_PER_HOUR"] = "100000000"
        environment["JWT_SECRET"] = Stack.jwtSecret
        environment["BCRYPT_COST"] = "4"
        environment["LOG_FORMAT"] = "json"
        environment["LOG_LEVEL"] = "debug"
        environment["RATE_LIMIT_PER_SECOND"] = "100000"
        environment["RATE_LIMIT_BURST"] = "100000"
        if !defaultPolicy { environment.merge(WorkerProcesses.policyEnvironment) { _, new in new } }
        environment.merge(extraEnvironment) { _, new in new }
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("api-log") + ".log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        process.executableURL = WorkerProcesses.binDirectory.appendingPathComponent("emporium-api")
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let up = await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await self.curl(["-fsS", "\(self.url)/health"]))?.status == 0 }
        guard up else { throw TestFailure("emporium-api did not start:\n\(log.suffix(2000))") }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Runs curl with `arguments`; `-w` status codes and bodies come back in the output.
    func curl(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await TestEnvironment.run("/usr/bin/curl", ["-sS", "--max-time", "30"] + arguments)
    }

    /// POSTs or GETs JSON; returns the HTTP status and the body.
    func request(_ method: String, _ path: String, json: Any? = nil, headers: [String: String] = [:]) async throws -> (status: Int, body: String) {
        var arguments = ["-X", method, "-w", "\n%{http_code}", "\(url)\(path)"]
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let json {
            arguments += [
                "-H", "Content-Type: application/json", "--data-binary", String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self),
            ]
        }
        let (_, output) = try await curl(arguments)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// Whether the process is still alive.
    var isRunning: Bool { process.isRunning }

    /// The exit status once stopped.
    var exitStatus: Int32 { process.terminationStatus }
    var logLines: [String] { log.split(separator: "\n").map(String.init) }

    /// SIGTERM, then waits for the exit (so every line is written).
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { if process.isRunning { process.terminate() } }
}

/// Parses a JSON log line into its fields; nil when it is not one JSON object.
func jsonLogLine(_ line: String) -> [String: Any]? {
    (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
}
