import Domain
import Foundation
import Messaging
import Postgres
import TestSupport
import Testing

/// A migration that alters hot tables while the workers are busy: the prepared statements
/// go stale under them (`0A000`), which must cost a retry of the transaction, not a message.
@Suite("Schema changes under load", .timeLimit(.minutes(4)))
struct SchemaChangeTests {
    @Test("ALTER TABLE on hot tables while workers are busy dead-letters nothing; every order completes and stock adds up")
    func alterTableUnderLoad() async throws {
        var options = Stack.Options()
        options.providerLatency = .milliseconds(20)
        try await Stack.run(options) { stack in
            let admin = try await stack.admin()
            let initialStock = 1_000
            let productId = try await stack.product(admin, stock: initialStock)
            var tokens: [String] = []
            for _ in 0..<60 {
                let (_, token) = try await stack.customer()
                try await stack.addToCart(token, productId, quantity: 1)
                tokens.append(token)
            }
            // Orders go in waves, with a schema change taking each table's exclusive lock and
            // changing result types between them.
            let alters = [
                "ALTER TABLE products ALTER COLUMN stock TYPE int4",
                "ALTER TABLE orders ALTER COLUMN total_cents TYPE int4, ADD COLUMN note text",
                "ALTER TABLE payments ALTER COLUMN amount_cents TYPE int4",
                "ALTER TABLE stock_reservations ALTER COLUMN quantity TYPE int8",
                "ALTER TABLE products ALTER COLUMN stock TYPE int8",
                "ALTER TABLE orders ALTER COLUMN total_cents TYPE int8, DROP COLUMN note",
            ]
            var orderIds: [UUID] = []
            for (wave, alter) in alters.enumerated() {
                let batch = Array(tokens[(wave * 10)..<(wave * 10 + 10)])
                orderIds += try await withThrowingTaskGroup(of: UUID.self) { group in
                    for token in batch { group.addTask { try await stack.placeOrder(token) } }
                    return try await group.reduce(into: [UUID]()) { $0.append($1) }
                }
                // While this wave's messages are being handled.
                try await stack.db.query(alter)
            }
            let settled = await TestEnvironment.eventually(timeout: .seconds(120)) {
                (try? await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'CONFIRMED'", [orderIds])) == orderIds.count
            }
            let unconfirmed = try await stack.count("SELECT count(*) FROM orders WHERE id = ANY($1) AND status <> 'CONFIRMED'", [orderIds])
            #expect(settled, "not confirmed: \(unconfirmed)")
            for role in WorkerRole.allCases {
                #expect(try await stack.deadLetters(role) == 0, "dead letters in \(role.rawValue)")
            }
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == initialStock - orderIds.count })
            #expect(
                try await stack.count(
                    "SELECT count(*) FROM (SELECT order_id FROM fake_provider_operations WHERE kind = 'charge' GROUP BY order_id HAVING count(*) > 1) AS d")
                    == 0)
        }
    }
}
