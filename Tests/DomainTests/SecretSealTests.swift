import Domain
import Foundation
import Testing

@Suite("Sealed secrets")
struct SecretSealTests {
    static func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }

    @Test("a sealed secret opens with its key for its row only; altered, another key or another row is refused; clear values pass as they are")
    func sealAndOpen() throws {
        let seal = try SecretSeal(base64Key: Self.key())
        let (endpoint, other) = (UUID(), UUID())
        let stored = try seal.seal("whsec_abc", for: endpoint)
        #expect(SecretSeal.isSealed(stored) && !stored.contains("whsec_abc"))
        #expect(try seal.open(stored, for: endpoint) == "whsec_abc")
        #expect(try seal.seal("whsec_abc", for: endpoint) != stored, "a fresh nonce each time")
        #expect(throws: SecretSeal.Failure.self) { try seal.open(stored, for: other) }
        #expect(throws: SecretSeal.Failure.self) { try SecretSeal(base64Key: Self.key()).open(stored, for: endpoint) }
        // One bit of the ciphertext flipped (in the bytes: a base64 character can differ in
        // padding bits alone and decode to the same bytes).
        var bytes = try #require(Data(base64Encoded: String(stored.dropFirst(SecretSeal.prefix.count))))
        bytes[12] ^= 0x01
        #expect(throws: SecretSeal.Failure.self) { try seal.open(SecretSeal.prefix + bytes.base64EncodedString(), for: endpoint) }
        #expect(try SecretSeal.reveal("whsec_clear", for: endpoint, with: nil) == "whsec_clear")
        #expect(try SecretSeal.reveal(stored, for: endpoint, with: seal) == "whsec_abc")
        let missing = #expect(throws: SecretSeal.Failure.self) { try SecretSeal.reveal(stored, for: endpoint, with: nil) }
        #expect(missing?.description.contains("WEBHOOK_SECRETS_KEY is not set") == true)
    }

    @Test("a key that is not 32 bytes of base64 is refused with what to do")
    func badKeys() {
        for bad in ["", "short", Data(repeating: 1, count: 16).base64EncodedString(), String(repeating: "z", count: 44)] {
            let refused = #expect(throws: SecretSeal.Failure.self) { try SecretSeal(base64Key: bad) }
            #expect(refused?.description.contains("openssl rand -base64 32") == true)
        }
    }
}
