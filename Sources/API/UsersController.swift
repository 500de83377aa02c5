import Domain
import Foundation
import Hummingbird
import Postgres
import Store

/// The caller's profile and addresses; user administration for ADMIN (roles: SUPERADMIN).
struct UsersController: Sendable {
    let pool: PostgresPool
    /// Told about every account change, so this process's tokens follow it at once.
    let accounts: AccountDirectory
    private let users = UserStore()
    private var administration: AccountAdministration { AccountAdministration(pool: pool, accounts: accounts) }
    static let maxAddresses = 20

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

        var fields: UserStore.AddressFields {
            UserStore.AddressFields(line1: line1, line2: line2, city: city, postalCode: postalCode, country: country, isDefault: isDefault ?? false)
        }
    }

    struct AddressList: ResponseEncodable, Sendable {
        let items: [UserStore.Address]
    }

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

    private func user(_ id: UUID) async throws -> UserStore.User {
        guard let user = try await users.user(id, on: pool) else { throw APIError.notFound("user") }
        return user
    }

    private func validateName(_ first: String, _ last: String) throws {
        var problems: [(String, String)] = []
        if !FieldRules.isName(first, max: 100) { problems.append(("first_name", FieldRules.nameRule(max: 100))) }
        if !FieldRules.isName(last, max: 100) { problems.append(("last_name", FieldRules.nameRule(max: 100))) }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
    }

    private func updateMe(_ request: Request, _ context: AppRequestContext) async throws -> UserStore.User {
        let id = try context.requireIdentity().userId
        let (change, _) = try await request.decodeJSON(ProfileChange.self, context: context)
        try validateName(change.firstName, change.lastName)
        try await users.rename(id, firstName: change.firstName, lastName: change.lastName, on: pool)
        return try await user(id)
    }

    private func list(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<UserStore.User> {
        try requireAdmin(context)
        let page = try Page(request)
        let found = try await users.users(size: page.size, offset: page.offset, on: pool)
        return PageBody(items: found.users, page: page.number, pageSize: page.size, total: found.total)
    }

    private func adminUpdate(_ request: Request, _ context: AppRequestContext) async throws -> UserStore.User {
        try requireAdmin(context)
        let id = try context.parameters.requireUUID("id", "user")
        let (change, _) = try await request.decodeJSON(AdminChange.self, context: context)
        return try await administration.change(
            id, AccountAdministration.Change(firstName: change.firstName, lastName: change.lastName, isActive: change.isActive, role: change.role),
            by: try context.requireIdentity(), log: context.logger)
    }

    /// Closes an account (``AccountAdministration/close``): 204, then 404 from then on.
    private func deactivate(_ context: AppRequestContext) async throws -> Response {
        try requireAdmin(context)
        try await administration.close(try context.parameters.requireUUID("id", "user"), by: try context.requireIdentity(), log: context.logger)
        return Response(status: .noContent)
    }

    // MARK: Addresses (always scoped to the caller)

    private func validate(_ input: AddressInput) throws {
        let problems = AddressRules.problems(line1: input.line1, line2: input.line2, city: input.city, postalCode: input.postalCode, country: input.country)
        guard problems.isEmpty else { throw APIError.invalid(problems) }
    }

    private func addresses(_ context: AppRequestContext) async throws -> AddressList {
        AddressList(items: try await users.addresses(of: try context.requireIdentity().userId, on: pool))
    }

    private func addAddress(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<UserStore.Address> {
        let userId = try context.requireIdentity().userId
        let (input, _) = try await request.decodeJSON(AddressInput.self, context: context)
        try validate(input)
        guard let address = try await users.addAddress(to: userId, input.fields, limit: Self.maxAddresses, on: pool) else {
            throw APIError.conflict("at most \(Self.maxAddresses) addresses per account; delete one first")
        }
        return EditedResponse(status: .created, response: address)
    }

    private func updateAddress(_ request: Request, _ context: AppRequestContext) async throws -> UserStore.Address {
        let userId = try context.requireIdentity().userId
        let id = try context.parameters.requireUUID("id", "address")
        let (input, _) = try await request.decodeJSON(AddressInput.self, context: context)
        try validate(input)
        guard let address = try await users.replaceAddress(id, of: userId, input.fields, on: pool) else { throw APIError.notFound("address") }
        return address
    }

    private func deleteAddress(_ context: AppRequestContext) async throws -> Response {
        let userId = try context.requireIdentity().userId
        let id = try context.parameters.requireUUID("id", "address")
        guard try await users.deleteAddress(id, of: userId, on: pool) else { throw APIError.notFound("address") }
        return Response(status: .noContent)
    }
}
