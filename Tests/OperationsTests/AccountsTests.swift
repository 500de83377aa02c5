import Domain
import Foundation
import Operations
import Postgres
import TestSupport
import Testing

@Suite("emporium user create and seed", .timeLimit(.minutes(10)))
struct AccountsTests {
    @Test("user create stores a bcrypt hash with the role and refuses a taken email or a weak password")
    func createUser() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 2)
            let accounts = Accounts(pool: pool, bcryptCost: 4)
            let id = try await accounts.createUser(email: "Seller@Example.com", password: "long enough", role: .seller, firstName: "Sam", lastName: "Seller")
            let row = try await pool.query("SELECT role, password_hash FROM users WHERE id = $1", [id])[0]
            #expect(try row.decode(String.self, "role") == "SELLER")
            let hash = try row.decode(String.self, "password_hash")
            #expect(hash.hasPrefix("$2b$") || hash.hasPrefix("$2a$"))
            #expect(!hash.contains("long enough"))
            // Emails are unique regardless of case.
            await #expect(throws: Accounts.Failure.self) {
                try await accounts.createUser(email: "seller@example.com", password: "long enough", role: .customer, firstName: "A", lastName: "B")
            }
            await #expect(throws: Accounts.Failure.self) {
                try await accounts.createUser(email: "new@example.com", password: "short", role: .customer, firstName: "A", lastName: "B")
            }
            await pool.close()
        }
    }

    @Test("seed adds the demo catalog and an admin once; running it again adds nothing")
    func seedTwice() async throws {
        try await TestEnvironment.withMigratedDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 2)
            let accounts = Accounts(pool: pool, bcryptCost: 4)
            let first = try await accounts.seed(adminEmail: "admin@example.com", adminPassword: "admin password")
            #expect(first.products == Accounts.demoCatalog.count)
            #expect(first.admin)
            let second = try await accounts.seed(adminEmail: "admin@example.com", adminPassword: "admin password")
            #expect(second.products == 0)
            #expect(!second.admin)
            #expect(try await pool.query("SELECT count(*) AS n FROM users WHERE role = 'ADMIN'")[0].decode(Int.self, "n") == 1)
            await pool.close()
        }
    }
}
