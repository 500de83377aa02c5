import Domain
import Foundation
import Hummingbird
import Postgres

/// The caller's profile and addresses; user administration for ADMIN (roles: SUPERADMIN).
struct UsersController: Sendable {
    let pool: PostgresPool
    /// Told about every account change, so this process's tokens follow it at once.
    let accounts: AccountDirectory
    static let maxAddresses = 20

    struct UserBody: ResponseEncodable, Sendable {
        let id: UUID
        let email: String
        let firstName: String
        let lastName: String
        let role: String
        let isActive: Bool
        let createdAt: Date

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            email = try row.decode(String.self, "email")
            firstName = try row.decode(String.self, "first_name")
            lastName = try row.decode(String.self, "last_name")
            role = try row.decode(String.self, "role")
            isActive = try row.decode(Bool.self, "is_active")
            createdAt = try row.decode(Date.self, "created_at")
        }
    }

    /// What a user may change about themselves; anything else in the body is ignored.
    struct ProfileChange: Decodable {
        let firstName: String
        let lastName: String
    }

    /// What an admin may change; `role` needs SUPERADMIN.
    struct AdminChange: Decodable {
        let firstName: String?
        let lastName: String?
        let isActive: Bool?
        let role: String?
    }

    struct AddressInput: Decodable {
        let line1: String
        let line2: String?
        let city: String
        let postalCode: String
        let country: String
        let isDefault: Bool?
    }

    struct AddressBody: ResponseEncodable, Sendable {
        let id: UUID
        let line1: String
        let line2: String?
        let city: String
        let postalCode: String
        let country: String
        let isDefault: Bool

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            line1 = try row.decode(String.self, "line1")
            line2 = try row.decode(String?.self, "line2")
            city = try row.decode(String.self, "city")
            postalCode = try row.decode(String.self, "postal_code")
            country = try row.decode(String.self, "country")
            isDefault = try row.decode(Bool.self, "is_default")
        }
    }

    struct AddressList: ResponseEncodable, Sendable {
        let items: [AddressBody]
    }

    static let userColumns = "id, email, first_name, last_name, role, is_active, created_at"
    static let addressColumns = "id, line1, line2, city, postal_code, country, is_default"

    func register(on group: RouterGroup<AppRequestContext>) {
        group.get("users/me") { _, context in try await user(context.requireIdentity().userId) }
        group.put("users/me") { request, context in try await updateMe(request, context) }
        group.get("users/me/addresses") { _, context in try await addresses(context) }
        group.post("users/me/addresses") { request, context in try await addAddress(request, context) }
        group.put("users/me/addresses/:id") { request, context in try await updateAddress(request, context) }
        group.delete("users/me/addresses/:id") { _, context in try await deleteAddress(context) }
        group.get("users") { request, context in try await list(request, context) }
        group.get("users/:id") { _, context in
            try requireAdmin(context)
            return try await user(try context.parameters.requireUUID("id", "user"))
        }
        group.put("users/:id") { request, context in try await adminUpdate(request, context) }
        group.delete("users/:id") { _, context in try await deactivate(context) }
    }

    private func requireAdmin(_ context: AppRequestContext) throws {
        guard try context.requireIdentity().role.isAdmin else { throw APIError.forbidden("only admins manage users") }
    }

    private func user(_ id: UUID) async throws -> UserBody {
        guard let row = try await pool.query("SELECT \(Self.userColumns) FROM users WHERE id = $1 AND closed_at IS NULL", [id]).first else { throw APIError.notFound("user") }
        return try UserBody(row)
    }

    private func validateName(_ first: String, _ last: String) throws {
        var problems: [(String, String)] = []
        if !FieldRules.isName(first, max: 100) { problems.append(("first_name", FieldRules.nameRule(max: 100))) }
        if !FieldRules.isName(last, max: 100) { problems.append(("last_name", FieldRules.nameRule(max: 100))) }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
    }

    private func updateMe(_ request: Request, _ context: AppRequestContext) async throws -> UserBody {
        let id = try context.requireIdentity().userId
        let (change, _) = try await request.decodeJSON(ProfileChange.self, context: context)
        try validateName(change.firstName, change.lastName)
        try await pool.query("UPDATE users SET first_name = $2, last_name = $3, updated_at = now() WHERE id = $1", [id, change.firstName, change.lastName])
        return try await user(id)
    }

    private func list(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<UserBody> {
        try requireAdmin(context)
        let page = try Page(request)
        let rows = try await pool.query(
            "SELECT \(Self.userColumns), count(*) OVER () AS total FROM users WHERE closed_at IS NULL ORDER BY created_at, id LIMIT $1 OFFSET $2", [page.size, page.offset])
        return PageBody(items: try rows.map(UserBody.init), page: page.number, pageSize: page.size, total: try rows.first?.decode(Int.self, "total") ?? 0)
    }

    private func adminUpdate(_ request: Request, _ context: AppRequestContext) async throws -> UserBody {
        try requireAdmin(context)
        let identity = try context.requireIdentity()
        let id = try context.parameters.requireUUID("id", "user")
        let (change, _) = try await request.decodeJSON(AdminChange.self, context: context)
        var current = try await user(id)
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
        try validateName(change.firstName ?? current.firstName, change.lastName ?? current.lastName)
        try await pool.query(
            "UPDATE users SET first_name = $2, last_name = $3, is_active = $4, role = $5, updated_at = now() WHERE id = $1 AND closed_at IS NULL",
            [id, change.firstName ?? current.firstName, change.lastName ?? current.lastName, change.isActive ?? current.isActive, change.role ?? current.role])
        if change.isActive == false { try await pool.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [id]) }
        accounts.invalidate(id)
        current = try await user(id)
        return current
    }

    /// Closes an account: it cannot sign in, its sessions end, and it is gone from this API
    /// (404 from then on). The row stays, because orders and payments keep referring to it.
    private func deactivate(_ context: AppRequestContext) async throws -> Response {
        try requireAdmin(context)
        let identity = try context.requireIdentity()
        let id = try context.parameters.requireUUID("id", "user")
        let target = try await user(id)
        guard id != identity.userId else { throw APIError.conflict("an admin cannot close their own account") }
        if Role(rawValue: target.role)?.isAdmin == true, identity.role != .superadmin { throw APIError.forbidden("only a SUPERADMIN manages other admins") }
        try await pool.query("UPDATE users SET is_active = false, closed_at = now(), updated_at = now() WHERE id = $1", [id])
        try await pool.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", [id])
        accounts.invalidate(id)
        return Response(status: .noContent)
    }

    // MARK: Addresses (always scoped to the caller)

    private func validate(_ input: AddressInput) throws {
        let problems = AddressRules.problems(line1: input.line1, line2: input.line2, city: input.city, postalCode: input.postalCode, country: input.country)
        guard problems.isEmpty else { throw APIError.invalid(problems) }
    }

    private func addresses(_ context: AppRequestContext) async throws -> AddressList {
        let userId = try context.requireIdentity().userId
        return AddressList(items: try await pool.query(
            "SELECT \(Self.addressColumns) FROM addresses WHERE user_id = $1 ORDER BY created_at, id", [userId]).map(AddressBody.init))
    }

    private func addAddress(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<AddressBody> {
        let userId = try context.requireIdentity().userId
        let (input, _) = try await request.decodeJSON(AddressInput.self, context: context)
        try validate(input)
        let row = try await pool.withTransaction { db -> PostgresRow in
            try await db.query("SELECT id FROM users WHERE id = $1 FOR UPDATE", [userId])
            guard try await db.query("SELECT count(*) AS n FROM addresses WHERE user_id = $1", [userId])[0].decode(Int.self, "n") < Self.maxAddresses else {
                throw APIError.conflict("at most \(Self.maxAddresses) addresses per account; delete one first")
            }
            if input.isDefault == true { try await db.query("UPDATE addresses SET is_default = false WHERE user_id = $1", [userId]) }
            return try await db.query(
                """
                INSERT INTO addresses (id, user_id, line1, line2, city, postal_code, country, is_default)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING \(Self.addressColumns)
                """, [UUID(), userId, input.line1, input.line2, input.city, input.postalCode, input.country, input.isDefault ?? false])[0]
        }
        return EditedResponse(status: .created, response: try AddressBody(row))
    }

    private func updateAddress(_ request: Request, _ context: AppRequestContext) async throws -> AddressBody {
        let userId = try context.requireIdentity().userId
        let id = try context.parameters.requireUUID("id", "address")
        let (input, _) = try await request.decodeJSON(AddressInput.self, context: context)
        try validate(input)
        let row = try await pool.withTransaction { db -> PostgresRow? in
            if input.isDefault == true { try await db.query("UPDATE addresses SET is_default = false WHERE user_id = $1 AND id <> $2", [userId, id]) }
            return try await db.query(
                """
                UPDATE addresses SET line1 = $3, line2 = $4, city = $5, postal_code = $6, country = $7, is_default = $8
                WHERE id = $1 AND user_id = $2 RETURNING \(Self.addressColumns)
                """, [id, userId, input.line1, input.line2, input.city, input.postalCode, input.country, input.isDefault ?? false]).first
        }
        guard let row else { throw APIError.notFound("address") }
        return try AddressBody(row)
    }

    private func deleteAddress(_ context: AppRequestContext) async throws -> Response {
        let userId = try context.requireIdentity().userId
        let id = try context.parameters.requireUUID("id", "address")
        guard try await pool.query("DELETE FROM addresses WHERE id = $1 AND user_id = $2", [id, userId]).affectedRows == 1 else {
            throw APIError.notFound("address")
        }
        return Response(status: .noContent)
    }
}
