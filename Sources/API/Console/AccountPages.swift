import Domain
import Foundation
import Hummingbird
import Store

/// Customers and staff: search, suspend, reinstate and close accounts; roles for SUPERADMIN
/// only. The rules are ``AccountAdministration``'s, the API's own.
struct AccountPages: Sendable {
    let controller: ConsoleController
    private var dependencies: ConsoleDependencies { controller.dependencies }
    static let pageSize = 25

    func register(on router: Router<AppRequestContext>) {
        router.get("admin/users") { request, context in try await controller.guarded(request, context, handler: list) }
        router.post("admin/users/:id") { request, context in try await controller.guarded(request, context, handler: change) }
    }

    private func list(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let query = request.uri.queryParameters
        let text = query.get("q").map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty || $0.count > 200 ? nil : $0 }
        let page = ListPage(query, size: Self.pageSize)
        let found = try await ConsoleQueries().users(text: text, size: page.size, offset: page.offset, on: dependencies.pool)
        var values = controller.base(viewer, title: "Customers and staff", section: "users")
        values["users"] = found.users.map { user -> [String: Any] in
            let isStaff = Role(rawValue: user.role)?.isAdmin == true
            let mayManage = user.id != viewer.userId && (!isStaff || viewer.role == .superadmin)
            let mayChangeRole = viewer.role == .superadmin && user.id != viewer.userId
            return [
                "has_roles": mayChangeRole, "id": user.id.uuidString.lowercased(), "email": user.email, "name": "\(user.firstName) \(user.lastName)",
                "role": user.role,
                "active": user.isActive, "created": ConsoleFormat.date(user.createdAt), "manage": mayManage,
                "roles": mayChangeRole
                    ? Role.allCases.map { ["value": $0.rawValue, "selected": $0.rawValue == user.role] } : [],
            ]
        }
        values["empty"] = found.users.isEmpty
        values["total"] = found.total
        values["q"] = text ?? ""
        let keep = text.map { "q=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&" } ?? ""
        values.addPager(page.pagerValues(path: "/admin/users", keeping: keep, total: found.total))
        return try controller.pages.page("users", values)
    }

    private func change(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let id = try context.parameters.requireUUID("id", "user")
        guard let action = form["action"], ["suspend", "reinstate", "close", "role"].contains(action) else {
            throw APIError.invalid([("action", "must be suspend, reinstate, close or role")])
        }
        guard let user = try await UserStore().user(id, on: dependencies.pool) else { throw APIError.notFound("user") }
        let role = form["role"]
        if action == "role", role.flatMap(Role.init(rawValue:)) == nil { throw APIError.invalid([("role", "must be CUSTOMER, SELLER, ADMIN or SUPERADMIN")]) }
        guard form["confirm"] == "yes" else {
            let question =
                switch action {
                case "suspend": "Suspend \(user.email)? They are signed out everywhere and cannot sign in until reinstated."
                case "reinstate": "Reinstate \(user.email)?"
                case "close": "Close \(user.email) for good? The account cannot sign in again; its orders stay."
                default: "Make \(user.email) a \(role ?? "")?"
                }
            return try controller.confirmPage(
                viewer, question: question, action: "/admin/users/\(id.uuidString.lowercased())", fields: [("action", action), ("role", role ?? "")],
                back: "/admin/users?q=\(user.email.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")")
        }
        let identity = Identity(userId: viewer.userId, role: viewer.role)
        switch action {
        case "close": try await dependencies.accounts.close(id, by: identity, log: context.logger)
        case "role": _ = try await dependencies.accounts.change(id, .init(role: role), by: identity, log: context.logger)
        default: _ = try await dependencies.accounts.change(id, .init(isActive: action == "reinstate"), by: identity, log: context.logger)
        }
        return ConsolePages.redirect("/admin/users?q=\(user.email.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")")
    }
}
