import Domain
import Foundation
import Logging
import Postgres
import Store

/// What an admin may do to another account, whoever asks: the API's `PUT/DELETE /users/{id}`
/// and the console's customer and staff pages call these, so the rules are one set: nobody
/// changes their own standing, only a SUPERADMIN changes roles or manages other admins. Each
/// change ends the account's console sessions when it lowers its standing and goes to the
/// audit log.
struct AccountAdministration: Sendable {
    let pool: PostgresPool
    let accounts: AccountDirectory
    private let users = UserStore()
    private let sessions = ConsoleSessionStore()
    private let audit = AuditStore()

    /// What an admin may change; nil leaves a field as it is.
    struct Change: Sendable {
        var firstName: String?
        var lastName: String?
        var isActive: Bool?
        var role: String?
    }

    /// Applies `change` to account `id` on behalf of `identity`; the account as it is now.
    func change(_ id: UUID, _ change: Change, by identity: Identity, log: Logger) async throws -> UserStore.User {
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins manage users") }
        guard let current = try await users.user(id, on: pool) else { throw APIError.notFound("user") }
        // Nobody changes their own standing: a suspended admin holding an old token cannot
        // reinstate themselves, and no one promotes or demotes themselves.
        if id == identity.userId, (change.isActive.map { $0 != current.isActive } ?? false) || (change.role.map { $0 != current.role } ?? false) {
            throw APIError.forbidden("nobody changes their own is_active or role; ask another admin")
        }
        if let role = change.role, role != current.role {
            guard identity.role == .superadmin else { throw APIError.forbidden("only a SUPERADMIN changes roles") }
            guard Role(rawValue: role) != nil else { throw APIError.invalid([("role", "must be CUSTOMER, SELLER, ADMIN or SUPERADMIN")]) }
        }
        // An admin may not change another admin unless they are a SUPERADMIN.
        if Role(rawValue: current.role)?.isAdmin == true, identity.role != .superadmin, id != identity.userId {
            throw APIError.forbidden("only a SUPERADMIN manages other admins")
        }
        let firstName = change.firstName ?? current.firstName, lastName = change.lastName ?? current.lastName
        var problems: [(String, String)] = []
        if !FieldRules.isName(firstName, max: 100) { problems.append(("first_name", FieldRules.nameRule(max: 100))) }
        if !FieldRules.isName(lastName, max: 100) { problems.append(("last_name", FieldRules.nameRule(max: 100))) }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
        let isActive = change.isActive ?? current.isActive, role = change.role ?? current.role
        try await users.administer(id, firstName: firstName, lastName: lastName, isActive: isActive, role: role, on: pool)
        if !isActive || role != current.role { try await sessions.revokeAll(userId: id, on: pool) }
        accounts.invalidate(id)
        try await record(
            identity,
            action: isActive != current.isActive ? (isActive ? "user.reinstate" : "user.suspend") : role != current.role ? "user.role" : "user.update",
            id, before: Self.standingJSON(current.isActive, current.role), after: Self.standingJSON(isActive, role))
        log.info("account changed", metadata: ["user": "\(id)", "actor.id": "\(identity.userId)", "is_active": "\(isActive)", "role": "\(role)"])
        guard let now = try await users.user(id, on: pool) else { throw APIError.notFound("user") }
        return now
    }

    /// Closes account `id`: it cannot sign in, its sessions end, and it is gone from the API.
    func close(_ id: UUID, by identity: Identity, log: Logger) async throws {
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins manage users") }
        guard let target = try await users.user(id, on: pool) else { throw APIError.notFound("user") }
        guard id != identity.userId else { throw APIError.conflict("an admin cannot close their own account") }
        if Role(rawValue: target.role)?.isAdmin == true, identity.role != .superadmin { throw APIError.forbidden("only a SUPERADMIN manages other admins") }
        try await users.close(id, on: pool)
        try await sessions.revokeAll(userId: id, on: pool)
        accounts.invalidate(id)
        try await record(identity, action: "user.close", id, before: Self.standingJSON(target.isActive, target.role), after: #"{"closed":true}"#)
        log.info("account closed", metadata: ["user": "\(id)", "actor.id": "\(identity.userId)"])
    }

    private func record(_ identity: Identity, action: String, _ id: UUID, before: String?, after: String?) async throws {
        try await pool.withConnection { db in
            try await audit.record(
                actor: identity.userId, action: action, objectType: "user", objectId: id.uuidString.lowercased(), before: before, after: after, on: db)
        }
    }

    private static func standingJSON(_ isActive: Bool, _ role: String) -> String { #"{"is_active":\#(isActive),"role":"\#(role)"}"# }
}
