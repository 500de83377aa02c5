import Foundation
import Testing

@testable import Workers

/// What reaches the SMTP relay: no text of a customer's can end a line, the headers or the
/// message early.
@Suite("SMTP message formatting", .timeLimit(.minutes(10)))
struct SMTPFormatTests {
    @Test("every line ending in a body becomes CRLF, bare CRs included, and lines starting with a dot are stuffed")
    func lineEndings() {
        let body = "Hello Eve\rSubject: fake\r\n.\nline\u{2028}next\u{2029}end\r\r\n"
        let message = SMTPClient.format(from: "shop@example.com", to: "eve@example.com", subject: "order\r\nBcc: x@example.com", body: body)
        let bytes = Array(message.utf8)
        // No CR that is not followed by LF, and no LF not preceded by CR.
        for (index, byte) in bytes.enumerated() {
            if byte == 0x0D { #expect(index + 1 < bytes.count && bytes[index + 1] == 0x0A, "a bare CR at \(index)") }
            if byte == 0x0A { #expect(index > 0 && bytes[index - 1] == 0x0D, "a bare LF at \(index)") }
        }
        #expect(!message.contains("\u{2028}") && !message.contains("\u{2029}"))
        // The lone "." line of the body is stuffed, so only the terminator is a lone dot.
        #expect(message.components(separatedBy: "\r\n").filter { $0 == "." }.count == 1)
        #expect(message.contains("\r\n..\r\n"))
        // The subject cannot carry a header: its line breaks are gone, and it is encoded.
        #expect(!message.contains("Bcc:"))
    }
}
