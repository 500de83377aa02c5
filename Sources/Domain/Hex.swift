/// Lower-case hexadecimal text of bytes (digests of request bodies, refresh tokens, migration
/// files), without `String(format:)`, which parses its format for every byte.
extension Sequence where Element == UInt8 {
    package var hexEncoded: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
