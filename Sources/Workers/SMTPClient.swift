import Foundation
import Units

#if canImport(Glibc)
    import Glibc
#endif

/// A plain SMTP client (RFC 5321) for handing one message to a relay: a mail catcher in
/// development, a local or private-network relay in production. No TLS or AUTH: point it
/// at a relay that accepts mail from this network. Blocking socket I/O on a dispatch
/// queue, bounded by `timeout` per step.
package struct SMTPClient: Sendable {
    /// A failure talking to the relay; `permanent` for 5xx answers (the message will never
    /// be accepted as is), transient otherwise.
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
        package let permanent: Bool
    }

    package let host: String
    package let port: Int
    package let timeout: Duration
    /// The name given in EHLO.
    package let heloName: String

    /// Creates a client for `host:port`.
    package init(host: String, port: Int, timeout: Duration = .seconds(10), heloName: String = "emporium") {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.heloName = heloName
    }

    /// Sends one plain-text message. `from` and `to` must be bare addresses.
    package func send(from: String, to: String, subject: String, body: String) async throws {
        for address in [from, to] where !Self.isSafeAddress(address) {
            throw Failure(description: "refusing to send to or from \(address.debugDescription)", permanent: true)
        }
        let message = Self.format(from: from, to: to, subject: subject, body: body)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                do {
                    try self.transact(from: from, to: to, message: message)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// No line breaks, spaces or angle brackets: nothing that could smuggle in a header or a command.
    static func isSafeAddress(_ address: String) -> Bool {
        address.contains("@") && address.utf8.count <= 254
            && !address.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7F || "<>()[],;:\\\"".unicodeScalars.contains($0) }
    }

    /// Headers and a dot-stuffed body with CRLF line endings, ending in the `.` line. Every
    /// line ending in the body (CRLF, a bare CR or LF, U+2028 and U+2029) becomes one CRLF,
    /// so nothing in a body can end the message or the headers early.
    static func format(from: String, to: String, subject: String, body: String) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss"  // RFC 5322
        let date = formatter.string(from: Date())
        let cleanSubject = subject.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        var lines = [
            "From: \(from)", "To: \(to)", "Subject: =?utf-8?B?\(Data(cleanSubject.utf8).base64EncodedString())?=", "Date: \(date) +0000",
            "Message-ID: <\(UUID().uuidString.lowercased())@emporium>", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit", "",
        ]
        let normalized = body.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .replacingOccurrences(of: "\u{2028}", with: "\n").replacingOccurrences(of: "\u{2029}", with: "\n")
        for line in normalized.split(separator: "\n", omittingEmptySubsequences: false) {
            lines.append(line.hasPrefix(".") ? "." + line : String(line))
        }
        return lines.joined(separator: "\r\n") + "\r\n.\r\n"
    }

    private func transact(from: String, to: String, message: String) throws {
        let connection = try Connection(host: host, port: port, timeout: timeout)
        defer { connection.close() }
        try connection.expect(220)
        try connection.command("EHLO \(heloName)", expect: 250)
        try connection.command("MAIL FROM:<\(from)>", expect: 250)
        try connection.command("RCPT TO:<\(to)>", expect: 250, 251)
        try connection.command("DATA", expect: 354)
        try connection.write(message)
        try connection.expect(250)
        try? connection.command("QUIT", expect: 221)
    }

    /// One TCP connection with line-oriented reads.
    private final class Connection {
        private let fd: Int32
        private var buffer: [UInt8] = []

        init(host: String, port: Int, timeout: Duration) throws {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
                throw Failure(description: "cannot resolve SMTP host \(host)", permanent: false)
            }
            defer { freeaddrinfo(result) }
            var candidate: UnsafeMutablePointer<addrinfo>? = first
            var connected: Int32 = -1
            var seconds = timeval(tv_sec: Int(timeout.wholeMicroseconds / 1_000_000), tv_usec: Int(timeout.wholeMicroseconds % 1_000_000))
            while let info = candidate, connected < 0 {
                let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
                if fd >= 0 {
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
                    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
                    if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { connected = fd } else { Glibc.close(fd) }
                }
                candidate = info.pointee.ai_next
            }
            guard connected >= 0 else { throw Failure(description: "cannot connect to SMTP \(host):\(port): errno \(errno)", permanent: false) }
            fd = connected
        }

        func close() { Glibc.close(fd) }

        func write(_ text: String) throws {
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { throw Failure(description: "SMTP connection lost while writing (errno \(errno))", permanent: false) }
                bytes = bytes.dropFirst(written)
            }
        }

        func command(_ line: String, expect codes: Int...) throws {
            try write(line + "\r\n")
            try expect(codes)
        }

        func expect(_ codes: Int...) throws { try expect(codes) }

        /// Reads a reply (the last line of a multi-line one decides) and checks its code.
        private func expect(_ codes: [Int]) throws {
            while true {
                let line = try readLine()
                let code = Int(line.prefix(3)) ?? 0
                if line.count > 3, line[line.index(line.startIndex, offsetBy: 3)] == "-" { continue }
                guard codes.contains(code) else {
                    throw Failure(description: "SMTP relay answered \(line.prefix(200))", permanent: (500..<600).contains(code))
                }
                return
            }
        }

        private func readLine() throws -> String {
            while true {
                if let end = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    buffer.removeSubrange(...end)
                    return line
                }
                guard buffer.count < 64 * 1024 else { throw Failure(description: "SMTP reply line too long", permanent: false) }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { throw Failure(description: "SMTP connection closed or timed out (errno \(errno))", permanent: false) }
                buffer += chunk[..<count]
            }
        }
    }
}
