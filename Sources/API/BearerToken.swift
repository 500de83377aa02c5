/// The token of an `Authorization: Bearer <token>` header.
enum BearerToken {
    /// The token after the scheme (`Bearer` in any case), blanks (space, tab) around it
    /// dropped; nil for a missing header, another scheme or an empty token. Read by byte:
    /// lower-casing the whole header and trimming through `NSString` took 2% of the API's CPU
    /// per order (profile of 2026-12-06).
    static func from(_ header: String?) -> String? {
        guard let header else { return nil }
        let bytes = header.utf8
        let scheme = "bearer ".utf8
        guard bytes.count > scheme.count,
            zip(bytes, scheme).allSatisfy({ sent, expected in sent == expected || (sent ^ 0x20 == expected && expected >= UInt8(ascii: "a")) })
        else { return nil }
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        let token = bytes.dropFirst(scheme.count).drop(while: isBlank)
        let end = token.lastIndex(where: { !isBlank($0) })
        guard let end else { return nil }
        return String(Substring(token[...end]))
    }
}
