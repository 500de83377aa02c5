import Domain
import Hummingbird

/// The API's JSON response encoder: the JSON `EmporiumJSON.encoder()` writes (snake_case
/// keys, ISO 8601 dates with milliseconds, keys sorted), built by ``JSONValueEncoder`` and
/// written by ``JSONValue/jsonBytes``.
///
/// Why: `JSONEncoder` was 9% of the API's CPU per placement in issue 15's profile
/// (2026-12-06), and every cart, order and catalog response went through a new one. The tree
/// coders are tested to agree with Foundation's (`JSONCodingTests`); the only difference in
/// the bytes is that `/` is not escaped, which every JSON reader takes as the same text.
package struct TreeResponseEncoder: ResponseEncoder {
    package init() {}

    package func encode(_ value: some Encodable, from request: Request, context: some RequestContext) throws -> Response {
        let bytes = try JSONValueEncoder().encode(value).jsonBytes
        var headers = HTTPFields()
        headers.reserveCapacity(2)
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.contentLength] = String(bytes.count)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
