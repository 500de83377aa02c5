import Domain
import Hummingbird

/// The API's JSON response encoder, by the rules of `EmporiumJSON.encoder()` (snake_case
/// keys, ISO 8601 dates with milliseconds, keys sorted): built by ``JSONValueEncoder`` and
/// written by ``JSONValue/jsonBytes``, as the placement's stored response already was.
///
/// Why: `JSONEncoder` was 9% of the API's CPU per placement in issue 15's profile
/// (2026-12-06), and every cart, order and catalog response went through a new one.
/// `JSONCodingTests` checks that the tree coders give the values Foundation's give. The bytes
/// can differ where no JSON reader looks: `/` is not escaped, and keys are sorted by their
/// UTF-8 bytes.
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
