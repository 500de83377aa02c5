import Foundation
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal SMTP server on 127.0.0.1 that keeps what it receives, standing in for the mail
/// catcher (mailpit) the compose file runs. `refuseRecipients` makes it answer 550 to RCPT.
final class SMTPSink: @unchecked Sendable {
    struct Message {
        let from: String
        let to: String
        let data: String
    }

    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var received: [Message] = []
    private let refuseRecipients: Bool

    init(refuseRecipients: Bool = false) throws {
        self.refuseRecipients = refuseRecipients
        (listener, port) = try TestEnvironment.bindLoopback()
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var messages: [Message] { lock.withLock { received } }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            Thread { [self] in serve(client) }.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        var buffer: [UInt8] = []
        func say(_ text: String) { _ = text.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }
        func line() -> String? {
            while true {
                if let end = buffer.firstIndex(of: 0x0A) {
                    let text = String(decoding: buffer[..<end], as: UTF8.self)
                    buffer.removeSubrange(...end)
                    return text.hasSuffix("\r") ? String(text.dropLast()) : text
                }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { return nil }
                buffer += chunk[..<count]
            }
        }
        say("220 sink ESMTP\r\n")
        var from = "", to = ""
        while let command = line() {
            let upper = command.uppercased()
            if upper.hasPrefix("EHLO") || upper.hasPrefix("HELO") {
                say("250-sink\r\n250 8BITMIME\r\n")
            } else if upper.hasPrefix("MAIL FROM:") {
                from = String(command.dropFirst(10)).trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
                say("250 OK\r\n")
            } else if upper.hasPrefix("RCPT TO:") {
                to = String(command.dropFirst(8)).trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
                say(refuseRecipients ? "550 no such mailbox\r\n" : "250 OK\r\n")
            } else if upper == "DATA" {
                say("354 go ahead\r\n")
                var data: [String] = []
                while let next = line(), next != "." { data.append(next.hasPrefix("..") ? String(next.dropFirst()) : next) }
                lock.withLock { received.append(Message(from: from, to: to, data: data.joined(separator: "\n"))) }
                say("250 queued\r\n")
            } else if upper == "QUIT" {
                say("221 bye\r\n")
                return
            } else {
                say("500 what\r\n")
            }
        }
    }
}
