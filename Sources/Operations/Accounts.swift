import Domain
import Foundation
import Postgres

/// Operator actions on accounts and demo data, used by `emporium user create` and
/// `emporium seed`.
public struct Accounts: Sendable {
    /// A failure meant for the operator.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    let pool: PostgresPool
    let bcryptCost: UInt8

    /// Creates the helper over `pool`.
    public init(pool: PostgresPool, bcryptCost: UInt8 = 11) {
        self.pool = pool
        self.bcryptCost = bcryptCost
    }

    /// Creates a user with `role`; fails if the email is taken or the input is invalid.
    @discardableResult
    public func createUser(email: String, password: String, role: Role, firstName: String, lastName: String) async throws -> UUID {
        guard email.contains("@"), email.count <= 254 else { throw Failure(description: "\(email) is not an email address") }
        guard Passwords.lengths.contains(password.unicodeScalars.count) else {
            throw Failure(description: "the password must be \(Passwords.lengths.lowerBound) to \(Passwords.lengths.upperBound) characters")
        }
        let id = UUID()
        do {
            try await pool.query(
                "INSERT INTO users (id, email, password_hash, first_name, last_name, role) VALUES ($1, $2, $3, $4, $5, $6)",
                [id, email, Passwords.hash(password, cost: bcryptCost), firstName, lastName, role.rawValue])
        } catch let error as PostgresError where error.isUniqueViolation {
            throw Failure(description: "a user with email \(email) already exists")
        }
        return id
    }

    /// The demo catalog: (sku, name, description, price in cents, stock).
    public static let demoCatalog: [(String, String, String, Int, Int)] = [
        ("MUG-001", "Emporium mug", "Stoneware, 330 ml", 1_290, 500),
        ("TEE-001", "Emporium T-shirt", "Organic cotton, unisex", 2_490, 300),
        ("BAG-001", "Canvas tote bag", "Heavy canvas, long handles", 1_590, 200),
        ("NOTE-001", "Dotted notebook", "A5, 160 pages", 990, 1_000),
        ("PEN-001", "Fountain pen", "Steel nib, medium", 3_490, 50),
    ]

    /// Inserts the demo catalog (existing SKUs are left alone) and, when given, an ADMIN
    /// account (an existing one is left alone). Returns what was created.
    public func seed(adminEmail: String?, adminPassword: String?) async throws -> (products: Int, admin: Bool) {
        var products = 0
        for (sku, name, description, price, stock) in Self.demoCatalog {
            products += try await pool.query(
                """
                INSERT INTO products (id, sku, name, description, price_cents, currency, stock)
                VALUES ($1, $2, $3, $4, $5, 'EUR', $6) ON CONFLICT (sku) DO NOTHING
                """, [UUID(), sku, name, description, price, stock]).affectedRows
        }
        var admin = false
        if let adminEmail, let adminPassword {
            let exists = try await pool.query("SELECT 1 FROM users WHERE lower(email) = lower($1)", [adminEmail]).count > 0
            if !exists {
                try await createUser(email: adminEmail, password: adminPassword, role: .admin, firstName: "Admin", lastName: "Emporium")
                admin = true
            }
        }
        return (products, admin)
    }
}
