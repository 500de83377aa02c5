import Crypto
import Foundation

/// The webhook signature scheme Stripe uses and Emporium's merchant webhooks use too: a header
/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (several `v1` entries while a
/// secret rotates). Verification checks the timestamp against a tolerance (a replayed old
/// delivery is refused) and compares signatures in constant time.
package enum WebhookSignature {
    /// Why a signature was refused.
    package enum Refusal: Error, Equatable, CustomStringConvertible {
        case missingHeader, malformedHeader, staleTimestamp, mismatch

        package var description: String {
            switch self {
            case .missingHeader: "no signature header"
            case .malformedHeader: "the signature header is not t=…,v1=…"
            case .staleTimestamp: "the signed timestamp is outside the tolerance"
            case .mismatch: "no signature matches the payload"
            }
        }
    }

    /// The header value for `body` signed with `secret` at `timestamp`.
    package static func header(for body: some DataProtocol, secret: String, timestamp: Int) -> String {
        "t=\(timestamp),v1=\(hexSignature(body, secret: secret, timestamp: timestamp))"
    }

    /// The hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
    package static func hexSignature(_ body: some DataProtocol, secret: String, timestamp: Int) -> String {
        var message = Data("\(timestamp).".utf8)
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
        return Data(mac).hexEncoded
    }

    /// Checks `header` for `body` against any of `secrets` at `now`; returns the signed timestamp.
    @discardableResult
    package static func verify(header: String?, body: some DataProtocol, secrets: [String], tolerance: Duration, now: Date = Date()) throws(Refusal) -> Int {
        guard let header, !header.isEmpty else { throw .missingHeader }
        var timestamp: Int?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int(pair[1]) } else if pair[0] == "v1" { signatures.append(pair[1].lowercased()) }
        }
        guard let timestamp, !signatures.isEmpty else { throw .malformedHeader }
        guard abs(now.timeIntervalSince1970 - TimeInterval(timestamp)) <= TimeInterval(tolerance.components.seconds) else { throw .staleTimestamp }
        for secret in secrets {
            let expected = Data(hexSignature(body, secret: secret, timestamp: timestamp).utf8)
            for signature in signatures where constantTimeEquals(Data(signature.utf8), expected) { return timestamp }
        }
        throw .mismatch
    }

    /// Compares without stopping at the first difference, so timing tells nothing of the secret.
    static func constantTimeEquals(_ lhs: Data, _ rhs: Data) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for (left, right) in zip(lhs, rhs) { difference |= left ^ right }
        return difference == 0
    }
}
