import Hummingbird
import Synchronization

/// The application's routes as (path segments, methods), filled once the router is built.
final class RouteTable: Sendable {
    private let routes = Mutex<[(segments: [Substring], methods: Set<String>)]>([])

    /// Records the router's routes; `{name}` segments match any one segment.
    func load(_ descriptions: [Router<AppRequestContext>.RouteDescription]) {
        var byPath: [String: Set<String>] = [:]
        for route in descriptions { byPath["\(route.path)", default: []].insert(route.method.rawValue) }
        routes.withLock { $0 = byPath.map { (path, methods) in (path.split(separator: "/"), methods) } }
    }

    /// Whether a route with literal/capture pattern `a` wins over `b`: the first segment where
    /// they differ decides, and a literal wins.
    private static func outranks(_ a: [Bool], _ b: [Bool]) -> Bool {
        for (x, y) in zip(a, b) where x != y { return x }
        return false
    }

    /// The methods of the route that owns `path` (as the router picks it: a literal segment
    /// beats a `{capture}`, from the left), empty when no route has that path.
    func methods(at path: String) -> Set<String> {
        let parts = path.split(separator: "/")
        return routes.withLock { routes in
            var best: (score: [Bool], methods: Set<String>)?
            for route in routes where route.segments.count == parts.count {
                guard zip(route.segments, parts).allSatisfy({ $0.hasPrefix("{") || $0 == $1 }) else { continue }
                let score = route.segments.map { !$0.hasPrefix("{") }  // true = literal
                if best == nil || Self.outranks(score, best!.score) {
                    best = (score, route.methods)
                } else if score == best!.score {
                    best!.methods.formUnion(route.methods)
                }
            }
            return best?.methods ?? []
        }
    }
}

/// A request to a known path with a method the path does not support is 405 with `Allow`
/// (RFC 9110), not the router's 404.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    let table: RouteTable

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let methods = table.methods(at: request.uri.path)
            guard !methods.isEmpty, !methods.contains(request.method.rawValue) else { throw error }
            let allow = methods.sorted().joined(separator: ", ")
            throw APIError(status: .methodNotAllowed, detail: "\(request.method.rawValue) is not supported here; use \(allow)", headers: [.allow: allow])
        }
    }
}
