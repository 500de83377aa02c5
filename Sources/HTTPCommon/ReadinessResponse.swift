import Hummingbird
import Observability

/// The `/ready` answer shared by the API and the workers: 200 with each check's result, or
/// 503 with a problem body naming what is unavailable and a `Retry-After`. Dependency errors
/// stay in the logs; the body carries only each check's safe detail.
package enum ReadinessResponse {
    /// The successful body.
    package struct Ready: Encodable {
        package let status: String
        package let checks: [String: String]
        package let paused: Paused?
    }

    /// Why a worker holds its messages.
    package struct Paused: Encodable, Sendable {
        package let dependency: String
        package let reason: String
        package let since: String
        package init(dependency: String, reason: String, since: String) {
            self.dependency = dependency
            self.reason = reason
            self.since = since
        }
    }

    private struct NotReady: Encodable {
        let problem: ProblemBody
        let paused: Paused?
        enum CodingKeys: CodingKey { case paused }
        func encode(to encoder: any Encoder) throws {
            try problem.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encodeIfPresent(paused, forKey: .paused)
        }
    }

    /// Runs every check concurrently (each bounded by its own deadline) and answers.
    package static func make(
        checks: [(name: String, check: CachedCheck)], extra: [String: CachedCheck.Result] = [:],
        paused: Paused? = nil
    ) async throws -> Response {
        var results = await withTaskGroup(of: (String, CachedCheck.Result).self) { group in
            for (name, check) in checks {
                group.addTask { (name, await check.result()) }
            }
            var results: [String: CachedCheck.Result] = [:]
            for await (name, result) in group { results[name] = result }
            return results
        }
        results.merge(extra) { _, new in new }
        let failing = results.filter { !$0.value.ok }.keys.sorted()
        let report = results.mapValues(\.detail)
        if failing.isEmpty && paused == nil {
            return try JSONResponse.make(.ok, Ready(status: "ready", checks: report, paused: nil))
        }
        let detail = paused.map { "paused: \($0.dependency) unavailable" } ?? "not ready: \(failing.joined(separator: ", ")) unavailable"
        let problem = ProblemBody(status: .serviceUnavailable, detail: detail, checks: report)
        return try JSONResponse.make(
            .serviceUnavailable, NotReady(problem: problem, paused: paused),
            contentType: "application/problem+json", headers: [.retryAfter: "5"])
    }
}
