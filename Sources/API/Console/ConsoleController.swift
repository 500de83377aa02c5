import Domain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Messaging
import Observability
import OperatorTools
import Postgres
import Store

/// The operator console under `/admin`: server-rendered pages with plain forms, a cookie
/// session, a CSRF token on every form, and a live feed over Server-Sent Events. Every action
/// goes through the same code as the API's route for it (``OrderOperations``,
/// ``AccountAdministration``, ``ProductsController``, the CLI's ``DeadLetters``).
struct ConsoleController: Sendable {
    let pages: ConsolePages
    let sessions: WebSessions
    let signIn: PasswordSignIn
    let dependencies: ConsoleDependencies

    /// A handler that needs a signed-in viewer, and for `POST`s a valid CSRF token.
    /// `form` holds a `POST`'s fields (empty for a `GET`).
    typealias Handler = @Sendable (_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response

    func register(on router: Router<AppRequestContext>) {
        router.get("admin/static/:file") { _, context in try asset(context) }
        router.get("admin/login") { request, _ in try loginPage(request, problem: nil) }
        router.post("admin/login") { request, context in try await login(request, context) }
        router.post("admin/logout") { request, context in
            try await guarded(request, context, staff: true) { request, _, viewer, _ in
                ConsolePages.redirect("/admin/login", cookies: [try await sessions.close(viewer, secure: sessions.secure(request))])
            }
        }
        let overview = OverviewPages(controller: self)
        router.get("admin") { request, context in try await guarded(request, context, handler: overview.page) }
        router.get("admin/overview/figures") { request, context in try await guarded(request, context, handler: overview.figures) }
        router.get("admin/live") { request, context in try await guarded(request, context, handler: LiveStream(feed: dependencies.feed).stream) }
        OrderPages(controller: self).register(on: router)
        CatalogPages(controller: self).register(on: router)
        AccountPages(controller: self).register(on: router)
        DeadLetterPages(controller: self).register(on: router)
    }

    // MARK: Sessions

    /// Runs `handler` for a signed-in viewer: no session sends the browser to the sign-in page;
    /// a CUSTOMER never gets this far (they have no console session); a SELLER reaches only
    /// the pages marked `staff` (the catalog); a `POST` without this session's CSRF token is
    /// refused (403). An API error becomes an HTML page with its status and detail.
    func guarded(_ request: Request, _ context: AppRequestContext, staff: Bool = false, handler: Handler) async throws -> Response {
        guard let viewer = try await sessions.viewer(request) else {
            if request.method == .get, !request.uri.path.hasPrefix("/admin/live"), !request.uri.path.hasPrefix("/admin/overview/") {
                return ConsolePages.redirect("/admin/login?next=" + (request.uri.path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
            }
            return try errorPage(status: .unauthorized, detail: "sign in first", viewer: nil)
        }
        guard viewer.isAdmin || staff else {
            return try errorPage(status: .forbidden, detail: "this page is for admins; sellers manage their products under Catalog", viewer: viewer)
        }
        // The first console page this process serves connects its live feed.
        if viewer.isAdmin { dependencies.feed.start() }
        var context = context
        context.identity = Identity(userId: viewer.userId, role: viewer.role)
        context.logger[metadataKey: "actor.id"] = "\(viewer.userId)"
        do {
            if request.method == .post {
                let form = try await FormFields.read(request)
                guard let token = form["csrf"], WebSessions.same(token, viewer.csrfToken) else {
                    context.logger.warning("console form refused: missing or wrong CSRF token")
                    return try errorPage(status: .forbidden, detail: "the form's CSRF token is missing or stale; reload the page and try again", viewer: viewer)
                }
                return try await handler(request, context, viewer, form)
            }
            return try await handler(request, context, viewer, FormFields(""))
        } catch let error as APIError {
            return try errorPage(status: error.status, detail: error.detail, viewer: viewer)
        }
    }

    private func loginPage(_ request: Request, problem: String?, status: HTTPResponse.Status = .ok) throws -> Response {
        let token = WebSessions.randomToken()
        let next = request.uri.queryParameters.get("next").flatMap(Self.safeNext) ?? "/admin"
        return try pages.page(
            "login", ["title": "Sign in", "csrf": token, "next": next, "problem": problem as Any], status: status,
            headers: [.setCookie: sessions.cookie(sessions.loginCookieName, value: token, maxAge: 3_600, secure: sessions.secure(request))])
    }

    /// Only a path inside the console is a place to go after sign-in (no open redirect).
    static func safeNext(_ next: String) -> String? {
        next.hasPrefix("/admin") && !next.contains("//") && !next.contains("\\") ? next : nil
    }

    private func login(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let form = try await FormFields.read(request)
        // Before sign-in there is no session: the form's token must match its cookie
        // (double submit); SameSite=Strict keeps other sites from sending either.
        guard let token = form["csrf"], let cookie = WebSessions.cookieValue(sessions.loginCookieName, in: request),
            WebSessions.same(token, cookie)
        else {
            return try loginPage(request, problem: "The form expired; please sign in again.", status: .forbidden)
        }
        guard let email = form["email"], let password = form["password"] else {
            return try loginPage(request, problem: "Enter your email and password.", status: .badRequest)
        }
        do {
            let (userId, role) = try await signIn.verify(email: email, password: password, clientAddress: context.clientAddress)
            guard role.isAdmin || role == .seller else {
                context.logger.notice("console sign-in refused: not staff", metadata: ["user": "\(userId)"])
                return try loginPage(request, problem: "This account cannot use the console.", status: .forbidden)
            }
            let cookie = try await sessions.open(userId: userId, secure: sessions.secure(request))
            context.logger.info("console sign-in", metadata: ["actor.id": "\(userId)"])
            let next = form["next"].flatMap(Self.safeNext) ?? (role == .seller ? "/admin/products" : "/admin")
            return ConsolePages.redirect(
                role == .seller && !next.hasPrefix("/admin/products") ? "/admin/products" : next,
                cookies: [cookie, sessions.cookie(sessions.loginCookieName, value: "", maxAge: 0, secure: sessions.secure(request))])
        } catch let error as APIError {
            return try loginPage(request, problem: error.status == .unauthorized ? "Email or password is incorrect." : error.detail, status: error.status)
        }
    }

    // MARK: Pages

    /// What every page's layout needs: the viewer, their CSRF token, the navigation.
    func base(_ viewer: SessionViewer?, title: String, section: String) -> [String: Any] {
        var values: [String: Any] = ["title": title, "section_\(section)": true]
        if let viewer {
            values["viewer"] = ["role": viewer.role.rawValue, "is_admin": viewer.isAdmin]
            values["csrf"] = viewer.csrfToken
        }
        return values
    }

    func errorPage(status: HTTPResponse.Status, detail: String, viewer: SessionViewer?) throws -> Response {
        var values = base(viewer, title: "\(status.code) \(status.reasonPhrase)", section: "none")
        values["status"] = status.code
        values["detail"] = detail
        return try pages.page("error", values, status: status)
    }

    private func asset(_ context: AppRequestContext) throws -> Response {
        guard let name = context.parameters.get("file"), let asset = pages.assets[name] else { throw APIError.notFound("file") }
        return Response(
            status: .ok, headers: [.contentType: asset.type, .cacheControl: "private, max-age=300"], body: .init(byteBuffer: ByteBuffer(string: asset.body)))
    }
}

/// What the console's pages read and act through, besides the API's own controllers.
struct ConsoleDependencies: Sendable {
    let pool: PostgresPool
    let orders: OrderOperations
    let products: ProductsController
    let categories: CategoriesController
    let accounts: AccountAdministration
    let feed: EventFanOut
    /// The overview's figures, shared by every open overview of this process.
    let overview: CoalescedReading<OverviewPages.Reading>
    let deadLetters: DeadLetters
    let settings: ConsoleSettings
    let logger: Logger
}
