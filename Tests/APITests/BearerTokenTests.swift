import Testing

@testable import API

@Suite("Bearer tokens from the Authorization header")
struct BearerTokenTests {
    @Test("the token after Bearer in any case, blanks around it dropped; anything else is no token")
    func parsing() {
        #expect(BearerToken.from("Bearer abc.def-ghi_") == "abc.def-ghi_")
        #expect(BearerToken.from("bearer abc") == "abc")
        #expect(BearerToken.from("BEARER abc") == "abc")
        #expect(BearerToken.from("bEaReR \t abc \t ") == "abc")
        #expect(BearerToken.from("Bearer a b") == "a b")  // not ours to split: the signature check refuses it
        for refused in [nil, "", "Bearer", "Bearer ", "Bearer  \t ", "Basic abc", "Bearerabc", "Bearer\tabc", "Bear abc", "xBearer abc", "Beärer abc"] {
            #expect(BearerToken.from(refused) == nil, "\(refused ?? "nil")")
        }
    }
}
