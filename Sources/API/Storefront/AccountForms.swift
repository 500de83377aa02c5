import Domain
import Foundation
import HTTPTypes
import Hummingbird

/// Sign-up, sign-in and sign-out for customers: the API's rules (``AuthController`` for
/// sign-up, ``PasswordSignIn`` with its throttle for sign-in) behind plain forms, and a
/// storefront session cookie afterwards.
struct AccountForms: Sendable {
    let controller: StorefrontController

    func register(on router: Router<AppRequestContext>) {
        router.get("signin") { request, context in try await controller.guarded(request, context, handler: signInPage) }
        router.post("signin") { request, context in try await controller.guarded(request, context, handler: signIn) }
        router.get("signup") { request, context in try await controller.guarded(request, context, handler: signUpPage) }
        router.post("signup") { request, context in try await controller.guarded(request, context, handler: signUp) }
        router.post("signout") { request, context in
            try await controller.guarded(request, context) { request, _, viewer, _ in
                guard let viewer else { return ConsolePages.redirect("/") }
                return ConsolePages.redirect("/", cookies: [try await controller.sessions.close(viewer, secure: controller.sessions.secure(request))])
            }
        }
    }

    private func form(
        _ template: String, _ request: Request, title: String, problem: String? = nil, values extra: [String: String] = [:],
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let (token, cookie) = controller.formToken(request)
        var values = await controller.base(nil, title: title, request: request)
        values["csrf"] = token
        values["next"] = StorefrontController.safeNext(request.uri.queryParameters.get("next").map { String($0) }) ?? extra["next"] ?? "/"
        values["problem"] = problem as Any
        values["rules"] = "At least 10 characters, not a common password."
        for (key, value) in extra where key != "next" { values[key] = value }
        return try controller.pages.page(template, values, status: status, headers: [.setCookie: cookie])
    }

    private func signInPage(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        if viewer != nil { return ConsolePages.redirect("/") }
        return try await self.form("signin", request, title: "Sign in")
    }

    private func signUpPage(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        if viewer != nil { return ConsolePages.redirect("/") }
        return try await self.form("signup", request, title: "Create your account")
    }

    private func signedIn(_ request: Request, userId: UUID, next: String?) async throws -> Response {
        let cookie = try await controller.sessions.open(userId: userId, secure: controller.sessions.secure(request))
        let clear = controller.sessions.cookie(controller.sessions.kind.formCookieName, value: "", maxAge: 0, secure: controller.sessions.secure(request))
        return ConsolePages.redirect(StorefrontController.safeNext(next) ?? "/", cookies: [cookie, clear])
    }

    private func signIn(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        guard let email = form["email"], let password = form["password"] else {
            return try await self.form("signin", request, title: "Sign in", problem: "Enter your email and password.", status: .badRequest)
        }
        do {
            let (userId, _) = try await controller.signIn.verify(email: email, password: password, clientAddress: context.clientAddress)
            return try await signedIn(request, userId: userId, next: form["next"])
        } catch let error as APIError {
            let problem = error.status == .unauthorized ? "Email or password is incorrect." : error.detail
            return try await self.form(
                "signin", request, title: "Sign in", problem: problem, values: ["email": email, "next": form["next"] ?? "/"], status: error.status)
        }
    }

    private func signUp(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer?, _ form: FormFields) async throws -> Response {
        let entered = ["email": form["email"] ?? "", "first_name": form["first_name"] ?? "", "last_name": form["last_name"] ?? "", "next": form["next"] ?? "/"]
        do {
            let user = try await controller.shop.auth.register(
                AuthController.Registration(
                    email: form["email"] ?? "", password: form.raw("password") ?? "", firstName: form["first_name"] ?? "", lastName: form["last_name"] ?? ""),
                clientAddress: context.clientAddress)
            context.logger.info("storefront sign-up", metadata: ["user.id": "\(user.id)"])
            return try await signedIn(request, userId: user.id, next: form["next"])
        } catch let error as APIError where error.status != .serviceUnavailable {
            let fields = error.errors.map { "\($0.field.replacingOccurrences(of: "_", with: " ")): \($0.message)" }
            let problem = fields.isEmpty ? error.detail : fields.joined(separator: "; ")
            return try await self.form("signup", request, title: "Create your account", problem: problem, values: entered, status: error.status)
        }
    }
}
