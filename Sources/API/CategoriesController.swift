import Foundation
import Hummingbird
import Postgres
import Store

/// Category tree: anyone reads it, ADMIN changes it. A category cannot become its own
/// ancestor, and one with subcategories cannot be deleted.
struct CategoriesController: Sendable {
    let pool: PostgresPool
    private let catalog = CatalogStore()
    /// A body naming a category that does not exist conflicts with the catalog as it is (409);
    /// 404 stays reserved for the resource the path names.
    static let unknownParent = APIError(
        status: .conflict, detail: "the parent category does not exist", errors: [.init(field: "parent_id", message: "unknown category")])

    struct Input: Decodable {
        let name: String
        let slug: String
        let parentId: UUID?
    }

    struct CategoryList: ResponseEncodable, Sendable {
        let items: [CatalogStore.Category]
    }

    func register(public group: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        group.get("categories") { _, _ in CategoryList(items: try await catalog.categories(on: pool)) }
        authenticated.post("categories") { request, context in try await create(request, context) }
        authenticated.put("categories/:id") { request, context in try await update(request, context) }
        authenticated.delete("categories/:id") { _, context in try await delete(context) }
    }

    private func validated(_ request: Request, _ context: AppRequestContext) async throws -> Input {
        guard try context.requireIdentity().role.isAdmin else { throw APIError.forbidden("only admins manage categories") }
        let (input, _) = try await request.decodeJSON(Input.self, context: context)
        try Self.validate(input)
        return input
    }

    /// The contract's rules for a category's name and slug.
    static func validate(_ input: Input) throws {
        var problems: [(String, String)] = []
        if !FieldRules.isText(input.name, max: 100) { problems.append(("name", "must be 1 to 100 characters, not only spaces")) }
        if !FieldRules.isToken(input.slug, extra: "-", max: 64) || input.slug.lowercased() != input.slug {
            problems.append(("slug", "must be 1 to 64 lower-case letters, digits or dashes"))
        }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
    }

    private func create(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<CatalogStore.Category> {
        let input = try await validated(request, context)
        return EditedResponse(status: .created, response: try await create(input, by: try context.requireIdentity()))
    }

    /// Creates a category (ADMIN): the API's and the console's path.
    func create(_ input: Input, by identity: Identity) async throws -> CatalogStore.Category {
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins manage categories") }
        try Self.validate(input)
        return try await storing(slug: input.slug) {
            try await catalog.createCategory(name: input.name, slug: input.slug, parentId: input.parentId, on: pool)
        }
    }

    private func update(_ request: Request, _ context: AppRequestContext) async throws -> CatalogStore.Category {
        let input = try await validated(request, context)
        let id = try context.parameters.requireUUID("id", "category")
        return try await pool.withTransaction { db in
            // The new parent must not be the category itself or one of its descendants.
            if let parent = input.parentId, try await catalog.isSelfOrBelow(parent, id, on: db) {
                throw APIError.conflict("a category cannot be moved under itself or its subcategories")
            }
            guard
                let category = try await storing(
                    slug: input.slug,
                    {
                        try await catalog.updateCategory(id, name: input.name, slug: input.slug, parentId: input.parentId, on: db)
                    })
            else { throw APIError.notFound("category") }
            return category
        }
    }

    private func delete(_ context: AppRequestContext) async throws -> Response {
        guard try context.requireIdentity().role.isAdmin else { throw APIError.forbidden("only admins manage categories") }
        let id = try context.parameters.requireUUID("id", "category")
        do {
            guard try await catalog.deleteCategory(id, on: pool) else { throw APIError.notFound("category") }
        } catch let error as PostgresError where error.isForeignKeyViolation {
            throw APIError.conflict("the category has subcategories; move or delete them first")
        }
        return Response(status: .noContent)
    }

    /// Runs a write, turning a taken slug and an unknown parent into 409s naming them.
    private func storing<T>(slug: String, _ write: () async throws -> T) async throws -> T {
        do {
            return try await write()
        } catch let error as PostgresError where error.isUniqueViolation {
            throw APIError.conflict("a category with slug \(slug) exists")
        } catch let error as PostgresError where error.isForeignKeyViolation {
            throw Self.unknownParent
        }
    }
}
