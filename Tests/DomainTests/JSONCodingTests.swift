import Domain
import Foundation
import Testing

/// JSONValueEncoder and JSONValueDecoder must agree with EmporiumJSON's Foundation coders
/// on every input, since workers built with either read and write the same events: each
/// test runs both and compares.
@Suite("JSON trees without bytes")
struct JSONCodingTests {
    /// What Foundation makes of `value`: encoded to bytes and parsed into a tree.
    static func foundationTree<T: Encodable>(_ value: T) throws -> JSONValue {
        try EmporiumJSON.decoder().decode(JSONValue.self, from: EmporiumJSON.encoder().encode(value))
    }

    /// `value`'s bytes as Foundation writes them, to compare decoded values without Equatable.
    static func bytes<T: Encodable>(_ value: T) throws -> Data { try EmporiumJSON.encoder().encode(value) }

    /// Every kind of thing a Codable type can do: nested keyed and unkeyed containers,
    /// optionals present and absent, arrays of optionals, dictionaries, dates, URLs, data,
    /// enums with associated values, a superclass's encoder (`Derived`), awkward key names.
    struct Awkward: Codable {
        enum Shape: Codable {
            case circle(radius: Double)
            case box(width: Int, height: Int)
            case none
        }
        var orderId = UUID()
        var homePage = URL(string: "https://shop.example/a?b=c")!
        var placedAt = Date(timeIntervalSince1970: 1_764_000_000.125)
        var blob = Data([0, 1, 2, 250, 255])
        var reason: String? = nil
        var note: String? = "x"
        var maybeNumbers: [Int?] = [1, nil, -3]
        var matrix: [[Int]] = [[1, 2], [], [3]]
        var byName: [String: Int] = ["alreadySnake": 1, "plain": 2, "HTTPStatus": 3]
        var shapes: [Shape] = [.circle(radius: 1.5), .box(width: 2, height: 3), .none]
        var flag = true
        var tiny: Int8 = -128
        var huge: UInt64 = 9_007_199_254_740_993
        var ratio: Double = 0.1
        var text = "quote \" backslash \\ é 😀"
        // Keys that survive the snake_case round trip (`myURLKey` and `ABc` do not, in
        // Foundation's coders as in these: see keyConversions).
        var aB = 1
        var x1Y = 3
        var nested: [String: [String: Int?]] = ["innerKey": ["deepKey": nil, "other": 4]]
        // Trees inside typed values, nulls included (a null is a JSONValue, not a missing one).
        var nothing: JSONValue = .null
        var anything: JSONValue = .object(["someKey": .null, "list": .array([.null, .int(1), .string("x")])])
    }

    class Base: Codable {
        var baseValue = 1
    }
    final class Derived: Base {
        var ownValue = 2
        override init() { super.init() }
        enum CodingKeys: String, CodingKey { case ownValue }
        required init(from decoder: any Decoder) throws {
            ownValue = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .ownValue)
            try super.init(from: try decoder.container(keyedBy: CodingKeys.self).superDecoder())
        }
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(ownValue, forKey: .ownValue)
            try super.encode(to: container.superEncoder())
        }
    }

    static func eventPayloads() -> [any Codable] {
        let (order, user, payment, refund, product) = (UUID(), UUID(), UUID(), UUID(), UUID())
        return [
            OrderPlaced(
                orderId: order, userId: user, totalCents: 12_345, currency: "EUR", paymentMethod: "card",
                lines: [OrderLine(productId: product, quantity: 2), OrderLine(productId: UUID(), quantity: 1)]),
            StockOutcome(orderId: order), StockOutcome(orderId: order, productId: product),
            PaymentRequested(orderId: order, userId: user, amountCents: 500, currency: "USD", paymentMethod: "tok_visa"),
            PaymentOutcome(orderId: order, paymentId: payment), PaymentOutcome(orderId: order, paymentId: payment, reason: "card_declined"),
            OrderOutcome(orderId: order, userId: user, reason: "out_of_stock"),
            PaymentRefunded(
                orderId: order, paymentId: payment, refundId: refund, amountCents: 100, currency: "EUR",
                refundedCents: 100, capturedCents: 500, restock: [OrderLine(productId: product, quantity: 1)]),
            PaymentRefunded(orderId: order, paymentId: payment, refundId: refund, amountCents: 100, currency: "EUR"),
            RefundRequested(orderId: order, refundId: refund),
            ProviderEventReceived(eventId: "evt_1", type: "payment_intent.succeeded", paymentIntent: "pi_1", orderId: order),
            ProviderEventReceived(eventId: "evt_2", type: "charge.refunded", paymentIntent: nil, orderId: nil),
            WebhookDeliveryRequested(deliveryId: UUID(), endpointId: UUID()),
            Awkward(), Derived(),
        ]
    }

    @Test("every event payload and an awkward type encode to the tree Foundation's coders make, and decode back to the same value")
    func agreesWithFoundation() throws {
        for payload in Self.eventPayloads() {
            try Self.check(payload)
        }
    }

    @Test("an event's line that wants fewer than 1 unit is refused by both decoders; 1 is read")
    func orderLineQuantityAtLeastOne() throws {
        let product = UUID()
        for quantity in [-5, 0, 1] {
            let bytes = Data(#"{"product_id":"\#(product.uuidString)","quantity":\#(quantity)}"#.utf8)
            let tree = try EmporiumJSON.decoder().decode(JSONValue.self, from: bytes)
            if quantity > 0 {
                #expect(try EmporiumJSON.decoder().decode(OrderLine.self, from: bytes) == OrderLine(productId: product, quantity: quantity))
                #expect(try JSONValueDecoder().decode(OrderLine.self, from: tree) == OrderLine(productId: product, quantity: quantity))
            } else {
                #expect(throws: DecodingError.self) { try EmporiumJSON.decoder().decode(OrderLine.self, from: bytes) }
                #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(OrderLine.self, from: tree) }
            }
        }
    }

    private static func check<T: Codable>(_ value: T) throws {
        let tree = try JSONValueEncoder().encode(value)
        let expected = try foundationTree(value)
        if case .object(let ours) = tree, case .object(let theirs) = expected {
            for key in Set(ours.keys).union(theirs.keys) where ours[key] != theirs[key] {
                print("DIFF \(key): ours \(String(describing: ours[key])) theirs \(String(describing: theirs[key]))")
            }
        }
        #expect(tree == expected, "encoding \(T.self)")
        let decoded = try JSONValueDecoder().decode(T.self, from: tree)
        #expect(try bytes(decoded) == (try bytes(value)), "decoding \(T.self)")
    }

    /// Encodes the given key names through a keyed container, so the key strategy applies.
    struct KeyProbe: Encodable {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        var keys: [String]
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            for key in keys { try container.encode(1, forKey: Key(stringValue: key)) }
        }
    }

    /// Collects the key names a keyed container offers after the key strategy.
    struct KeyCollector: Decodable {
        var keys: Set<String>
        init(from decoder: any Decoder) throws {
            keys = Set(try decoder.container(keyedBy: KeyProbe.Key.self).allKeys.map(\.stringValue))
        }
    }

    static let awkwardKeys = [
        "", "a", "A", "id", "HTTPStatus", "ID", "orderId", "myURLKey", "URL", "aB", "ABc", "ABCd", "x1Y", "x1y", "already_snake", "_leading", "trailing_",
        "__both__", "_", "a__b", "order_id", "payment_intent_id", "_x_y_", "x_", "schema_version", "a_b2", "2_fa", "Order_Id", "order_ID", "a_2fa",
        "UPPER_CASE", "émigré_été", "naïveKey", "ÉtéKey", "a_b_c_d",
    ]

    @Test("snake_case and camelCase conversions match Foundation's key strategies key for key, awkward ones included")
    func keyConversions() throws {
        for key in Self.awkwardKeys {
            let foundation = try EmporiumJSON.decoder().decode([String: Int].self, from: EmporiumJSON.encoder().encode(KeyProbe(keys: [key])))
            #expect(Set(foundation.keys) == [EmporiumJSON.snakeCase(fromCamelCase: key)], "to snake_case: \(key)")
            let decoder = EmporiumJSON.decoder()
            let converted = try decoder.decode(KeyCollector.self, from: JSONSerialization.data(withJSONObject: [key: 1]))
            #expect(converted.keys == [EmporiumJSON.camelCase(fromSnakeCase: key)], "from snake_case: \(key)")
            let fromTree = try JSONValueDecoder().decode(KeyCollector.self, from: .object([key: .int(1)]))
            #expect(fromTree.keys == converted.keys, "tree decoder, from snake_case: \(key)")
        }
    }

    /// The kind of a decoding error, to compare ours with Foundation's.
    static func kind(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch: "typeMismatch"
        case .valueNotFound: "valueNotFound"
        case .keyNotFound: "keyNotFound"
        case .dataCorrupted: "dataCorrupted"
        default: "other: \(error)"
        }
    }

    struct Strict: Codable {
        var count: Int
        var small: Int8
        var when: Date
        var names: [String]
    }

    @Test("bad input fails with the DecodingError Foundation's decoder gives: missing, null, mistyped, out of range, not a date, short array")
    func errorsMatchFoundation() throws {
        let cases: [String] = [
            #"{"small": 1, "when": "2026-12-02T10:00:00.000Z", "names": []}"#,
            #"{"count": null, "small": 1, "when": "2026-12-02T10:00:00.000Z", "names": []}"#,
            #"{"count": "1", "small": 1, "when": "2026-12-02T10:00:00.000Z", "names": []}"#,
            #"{"count": 1, "small": 300, "when": "2026-12-02T10:00:00.000Z", "names": []}"#,
            #"{"count": 1, "small": 1, "when": "yesterday", "names": []}"#,
            #"{"count": 1, "small": 1, "when": "2026-12-02T10:00:00.000Z", "names": [1]}"#,
            #"{"count": 1, "small": 1, "when": "2026-12-02T10:00:00.000Z", "names": {}}"#,
            #"[1, 2]"#,
        ]
        for json in cases {
            let data = Data(json.utf8)
            let tree = try EmporiumJSON.decoder().decode(JSONValue.self, from: data)
            let foundation = #expect(throws: DecodingError.self) { try EmporiumJSON.decoder().decode(Strict.self, from: data) }
            let ours = #expect(throws: DecodingError.self) { try JSONValueDecoder().decode(Strict.self, from: tree) }
            #expect(ours.map(Self.kind) == foundation.map(Self.kind), "\(json)")
        }
        let good = Data(#"{"count": 1, "small": -2, "when": "2026-12-02T10:00:00Z", "names": ["a"]}"#.utf8)
        let decoded = try JSONValueDecoder().decode(Strict.self, from: EmporiumJSON.decoder().decode(JSONValue.self, from: good))
        #expect(try Self.bytes(decoded) == (try Self.bytes(EmporiumJSON.decoder().decode(Strict.self, from: good))))
    }

    @Test("a non-finite number is refused by both encoders")
    func nonFinite() {
        struct Ratio: Encodable { var value: Double }
        #expect(throws: EncodingError.self) { try EmporiumJSON.encoder().encode(Ratio(value: .nan)) }
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encode(Ratio(value: .infinity)) }
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encode([Double.nan]) }
    }
}
