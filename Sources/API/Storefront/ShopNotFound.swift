import Hummingbird

/// A browser that asks for a page the shop does not have gets the shop's own "not found" page
/// (with a way back), not the API's JSON problem. Only `GET`/`HEAD` of paths outside the API,
/// the console and the health and metrics routes, from clients that accept HTML, and only when
/// no route has the path at all (a known path with another method stays a 405).
struct ShopNotFoundMiddleware: RouterMiddleware {
    let pages: ConsolePages
    let table: RouteTable
    /// Paths whose 404 stays the API's JSON problem.
    static let otherFaces = ["/api/", "/admin", "/health", "/ready", "/metrics", "/openapi", "/docs"]

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let path = request.uri.path
            guard request.method == .get || request.method == .head, !Self.otherFaces.contains(where: { path.hasPrefix($0) }),
                request.headers[.accept]?.contains("text/html") == true, table.methods(at: path).isEmpty
            else { throw error }
            return try pages.page(
                "error", ["title": "404 Not Found", "status": 404, "detail": "There is no page at this address. The shop's home page has the whole catalog."],
                status: .notFound)
        }
    }
}
