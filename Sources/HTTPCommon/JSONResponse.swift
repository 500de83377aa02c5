import Foundation
import Hummingbird

/// The one way Emporium's HTTP servers write a JSON body outside a request context's encoder
/// (problem bodies, readiness): keys sorted, so bodies are stable for clients and tests.
package enum JSONResponse {
    /// A response with `value` encoded as JSON, `contentType` and any extra `headers`.
    package static func make<T: Encodable>(
        _ status: HTTPResponse.Status, _ value: T, contentType: String = "application/json",
        headers: HTTPFields = [:]
    ) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var fields = headers
        fields[.contentType] = contentType
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}
