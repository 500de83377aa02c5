import Foundation
import Hummingbird
import Postgres

/// Category tree: anyone reads it, ADMIN changes it. A category cannot become its own
/// ancestor, and one with subcategories cannot be deleted.
struct CategoriesController: Sendable {
    let pool: PostgresPool
    /// A body naming a category that does not exist conflicts with the catalog as it is (409);
    /// 404 stays reserved for the resource the path names.
    static let unknownParent = APIError(status: .conflict, detail: "the parent category does not exist", errors: [.init(field: "parent_id", message: "unknown category")])

    struct Input: Decodable {
        let name: String
        let slug: String
        let parentId: UUID?
    }

    struct CategoryBody: ResponseEncodable, Sendable {
        let id: UUID
        let name: String
        let slug: String
        let parentId: UUID?

        init(_ row: PostgresRow) throws {
            id = try row.decode(UUID.self, "id")
            name = try row.decode(String.self, "name")
            slug = try row.decode(String.self, "slug")
            parentId = try row.decode(UUID?.self, "parent_id")
        }
    }

    struct CategoryList: ResponseEncodable, Sendable {
        let items: [CategoryBody]
    }

    func register(public group: RouterGroup<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        group.get("categories") { _, _ in
            CategoryList(items: try await pool.query("SELECT id, name, slug, parent_id FROM categories ORDER BY name, id").map(CategoryBody.init))
        }
        authenticated.post("categories") { request, context in try await create(request, context) }
        authenticated.put("categories/:id") { request, context in try await update(request, context) }
        authenticated.delete("categories/:id") { _, context in try await delete(context) }
    }

    private func validated(_ request: Request, _ context: AppRequestContext) async throws -> Input {
        guard try context.requireIdentity().role.isAdmin else { throw APIError.forbidden("only admins manage categories") }
        let (input, _) = try await request.decodeJSON(Input.self, context: context)
        var problems: [(String, String)] = []
        if !FieldRules.isText(input.name, max: 100) { problems.append(("name", "must be 1 to 100 characters, not only spaces")) }
        if !FieldRules.isToken(input.slug, extra: "-", max: 64) || input.slug.lowercased() != input.slug {
            problems.append(("slug", "must be 1 to 64 lower-case letters, digits or dashes"))
        }
        guard problems.isEmpty else { throw APIError.invalid(problems) }
        return input
    }

    private func create(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<CategoryBody> {
        let input = try await validated(request, context)
        do {
            let row = try await pool.query(
                "INSERT INTO categories (id, name, slug, parent_id) VALUES ($1, $2, $3, $4) RETURNING id, name, slug, parent_id",
                [UUID(), input.name, input.slug, input.parentId])[0]
            return EditedResponse(status: .created, response: try CategoryBody(row))
        } catch let error as PostgresError where error.isUniqueViolation {
            throw APIError.conflict("a category with slug \(input.slug) exists")
        } catch let error as PostgresError where error.sqlState == "23503" {
            throw Self.unknownParent
        }
    }

    private func update(_ request: Request, _ context: AppRequestContext) async throws -> CategoryBody {
        let input = try await validated(request, context)
        let id = try context.parameters.requireUUID("id", "category")
        return try await pool.withTransaction { db in
            if let parent = input.parentId {
                // The new parent must not be the category itself or one of its descendants.
                let cycle = try await db.query(
                    """
                    WITH RECURSIVE below AS (SELECT id FROM categories WHERE id = $1 UNION SELECT c.id FROM categories c JOIN below b ON c.parent_id = b.id)
                    SELECT 1 FROM below WHERE id = $2
                    """, [id, parent])
                guard cycle.count == 0 else { throw APIError.conflict("a category cannot be moved under itself or its subcategories") }
            }
            do {
                guard let row = try await db.query(
                    "UPDATE categories SET name = $2, slug = $3, parent_id = $4 WHERE id = $1 RETURNING id, name, slug, parent_id",
                    [id, input.name, input.slug, input.parentId]).first else { throw APIError.notFound("category") }
                return try CategoryBody(row)
            } catch let error as PostgresError where error.isUniqueViolation {
                throw APIError.conflict("a category with slug \(input.slug) exists")
            } catch let error as PostgresError where error.sqlState == "23503" {
                throw Self.unknownParent
            }
        }
    }

    private func delete(_ context: AppRequestContext) async throws -> Response {
        guard try context.requireIdentity().role.isAdmin else { throw APIError.forbidden("only admins manage categories") }
        let id = try context.parameters.requireUUID("id", "category")
        do {
            guard try await pool.query("DELETE FROM categories WHERE id = $1", [id]).affectedRows == 1 else { throw APIError.notFound("category") }
        } catch let error as PostgresError where error.sqlState == "23503" {
            throw APIError.conflict("the category has subcategories; move or delete them first")
        }
        return Response(status: .noContent)
    }
}
