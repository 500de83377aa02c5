/// User roles, from least to most privileged.
package enum Role: String, Sendable, Codable, CaseIterable {
    case customer = "CUSTOMER"
    case seller = "SELLER"
    case admin = "ADMIN"
    case superadmin = "SUPERADMIN"

    /// Whether this role may manage the whole catalog and every order.
    package var isAdmin: Bool { self == .admin || self == .superadmin }
}
