import Credentials
import Domain
import Foundation
import Postgres
import Store

/// Operator actions on accounts and demo data, used by `emporium user create` and
/// `emporium seed`.
package struct Accounts: Sendable {
    /// A failure meant for the operator.
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    let pool: PostgresPool
    let bcryptCost: UInt8

    /// Creates the helper over `pool`.
    package init(pool: PostgresPool, bcryptCost: UInt8 = 11) {
        self.pool = pool
        self.bcryptCost = bcryptCost
    }

    /// Creates a user with `role`; fails if the email is taken or the input is invalid.
    @discardableResult
    package func createUser(email: String, password: String, role: Role, firstName: String, lastName: String) async throws -> UUID {
        guard email.contains("@"), email.count <= 254 else { throw Failure(description: "\(email) is not an email address") }
        guard Passwords.lengths.contains(password.unicodeScalars.count) else {
            throw Failure(description: "the password must be \(Passwords.lengths.lowerBound) to \(Passwords.lengths.upperBound) characters")
        }
        let id = UUID()
        do {
            try await UserStore().create(
                id: id, email: email, passwordHash: Passwords.hash(password, cost: bcryptCost), firstName: firstName,
                lastName: lastName, role: role, on: pool)
        } catch let error as PostgresError where error.isUniqueViolation {
            throw Failure(description: "a user with email \(email) already exists")
        }
        return id
    }

    /// The demo catalog: (sku, name, description, price in cents, stock).
    package static let demoCatalog: [(String, String, String, Int, Int)] = [
        ("MUG-001", "Emporium mug", "Stoneware, 330 ml", 1_290, 500),
        ("TEE-001", "Emporium T-shirt", "Organic cotton, unisex", 2_490, 300),
        ("BAG-001", "Canvas tote bag", "Heavy canvas, long handles", 1_590, 200),
        ("NOTE-001", "Dotted notebook", "A5, 160 pages", 990, 1_000),
        ("PEN-001", "Fountain pen", "Steel nib, medium", 3_490, 50),
    ]

    /// Inserts the demo catalog (existing SKUs are left alone) and, when given, an ADMIN
    /// account (an existing one is left alone). Returns what was created.
    package func seed(adminEmail: String?, adminPassword: String?) async throws -> (products: Int, admin: Bool) {
        let products = try await CatalogStore().seed(
            Self.demoCatalog.map { (sku: $0.0, name: $0.1, description: $0.2, priceCents: $0.3, stock: $0.4) }, on: pool)
        var admin = false
        if let adminEmail, let adminPassword {
            if try await !UserStore().emailTaken(adminEmail, on: pool) {
                try await createUser(email: adminEmail, password: adminPassword, role: .admin, firstName: "Admin", lastName: "Emporium")
                admin = true
            }
        }
        return (products, admin)
    }
}
