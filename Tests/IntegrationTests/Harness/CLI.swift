import Foundation
import Messaging
import TestSupport

/// Runs the real `emporium` binary against a stack's broker and namespace.
struct CLI {
    /// The environment the stack's processes get.
    let base: [String: String]
    /// Variables set on top of the stack's (e.g. a dead broker's address).
    var overrides: [String: String] = [:]

    /// The CLI against `stack`'s database, broker and namespace.
    init(stack: Stack, overrides: [String: String] = [:]) {
        self.base = stack.processEnvironment
        self.overrides = overrides
    }

    /// The CLI with this environment.
    init(environment: [String: String]) {
        self.base = environment
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    var environment: [String: String] {
        var environment = base
        environment.merge(overrides) { _, new in new }
        return environment
    }

    func process(_ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = WorkerProcesses.binDirectory.appendingPathComponent("emporium")
        process.arguments = arguments
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    @discardableResult
    func run(_ arguments: String...) throws -> Result {
        let (process, out, err) = try process(arguments)
        // stderr is drained on a thread of its own while stdout is read here: read one after
        // the other, a child that fills the second pipe blocks before it closes the first.
        let stderr = PipeDrain(err.fileHandleForReading)
        let stdout = PipeDrain.readToEnd(out.fileHandleForReading.fileDescriptor)
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr.wait(), as: UTF8.self))
    }
}
