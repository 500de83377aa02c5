import Domain
import Foundation
import Testing

@testable import Messaging

/// Envelopes written before JSONValueText (through JSONEncoder) and after must read the same
/// either way: brokers, outbox rows and dead letters hold bodies from both.
@Suite("Event envelopes on the wire", .timeLimit(.minutes(1)))
struct EventEnvelopeTests {
    static func sample() throws -> EventEnvelope {
        let payload = OrderPlaced(
            orderId: UUID(), userId: UUID(), totalCents: 4_200, currency: "EUR", paymentMethod: "card",
            lines: [OrderLine(productId: UUID(), quantity: 3)])
        return try EventEnvelope(
            type: .orderPlaced, orderId: payload.orderId, payload: payload,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            occurredAt: Date(timeIntervalSince1970: 1_764_680_000.125))  // whole in binary: the text has milliseconds
    }

    @Test("a body written now reads back equal through JSONDecoder and through decode(_:), and the other way round")
    func bothWays() throws {
        let envelope = try Self.sample()
        let now = try envelope.encoded()
        let before = Array(try EmporiumJSON.encoder().encode(envelope))
        #expect(try EmporiumJSON.decoder().decode(EventEnvelope.self, from: Data(now)) == envelope)
        #expect(try EventEnvelope.decode(now) == envelope)
        #expect(try EventEnvelope.decode(before) == envelope)
        let placed = try EventEnvelope.decode(now).payload(as: OrderPlaced.self)
        #expect(placed.totalCents == 4_200 && placed.lines.first?.quantity == 3)
        #expect(try EventEnvelope.decode(now).encoded() == now, "writing is stable")
    }

    @Test("a body as PostgreSQL's jsonb gives it back (spaces, its own key order) reads the same")
    func jsonbText() throws {
        let envelope = try Self.sample()
        let tree = try JSONValue(parsing: try envelope.encoded())
        guard case .object(let members) = tree else {
            Issue.record("not an object")
            return
        }
        let spaced =
            "{"
            + members.keys.sorted(by: >).map { key in
                "\"\(key)\": " + String(decoding: members[key]!.jsonBytes, as: UTF8.self).replacingOccurrences(of: ",", with: ", ")
            }.joined(separator: ", ") + "}"
        #expect(try EventEnvelope.decode(Array(spaced.utf8)) == envelope)
    }

    @Test("an unknown type still reads (to be dead-lettered as such); a body that is not an envelope is refused")
    func unknownAndBroken() throws {
        let unknown = try EventEnvelope(typeName: "order.teleported", orderId: nil, payload: ["where": "moon"])
        let read = try EventEnvelope.decode(try unknown.encoded())
        #expect(read.type == "order.teleported" && read.eventType == nil && read.data == .object(["where": .string("moon")]))
        for body in ["", "not json", "{}", #"{"id":"x"}"#, "[1]", #"{"id":"4B1C0B0E-1F6B-4C1A-9C47-2B1E4E0D6F10","type":"order.placed""#] {
            #expect(throws: (any Error).self, "\(body)") { try EventEnvelope.decode(Array(body.utf8)) }
        }
    }
}
