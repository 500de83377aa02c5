import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1

/// Requests on many connections at once, for tests where concurrency must reach the
/// server as concurrency. (Hummingbird's test client sends everything over one keep-alive
/// connection, which the server answers one request at a time.)
final class ParallelHTTP: Sendable {
    let base: String
    private let client: HTTPClient

    init(port: Int) {
        base = "http://127.0.0.1:\(port)"
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 200
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// POSTs `json` to `path` with `headers`; returns the status and body.
    func post(_ path: String, json: [String: Any], headers: [(String, String)] = []) async throws -> (status: HTTPResponse.Status, body: String) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        let response = try await client.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (HTTPResponse.Status(code: Int(response.status.code)), String(buffer: body))
    }

    func shutdown() async {
        try? await client.shutdown()
    }
}
