import Crypto
import Domain
import Foundation
import Hummingbird
import Postgres
import Store

/// `…/webhook-endpoints` (ADMIN): merchant webhook endpoints, their signing secrets (shown once,
/// rotatable with an overlap), their delivery log and manual redelivery. The notification
/// worker sends the deliveries (``WebhookStore`` holds both tables).
struct WebhookEndpointsController: Sendable {
    let pool: PostgresPool
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`: allow http and private addresses (tests, development).
    let allowPrivateTargets: Bool
    /// `WEBHOOK_SECRET_OVERLAP_SECONDS`: how long a rotated-out secret keeps signing.
    let secretOverlap: Duration
    /// The endpoints' store, sealing secrets when `WEBHOOK_SECRETS_KEY` is set.
    let webhooks: WebhookStore

    struct EndpointInput: Decodable {
        let url: String
        let eventTypes: [String]
        let enabled: Bool?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: ExplicitKeys.self)
            url = try container.decode(String.self, forKey: .url)
            eventTypes = try container.decode([String].self, forKey: .eventTypes)
            enabled = try container.decodeUnlessAbsent(Bool.self, forKey: .enabled)
        }
    }

    struct EndpointChange: Decodable {
        let url: String?
        let eventTypes: [String]?
        let enabled: Bool?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: ExplicitKeys.self)
            url = try container.decodeUnlessAbsent(String.self, forKey: .url)
            eventTypes = try container.decodeUnlessAbsent([String].self, forKey: .eventTypes)
            enabled = try container.decodeUnlessAbsent(Bool.self, forKey: .enabled)
        }
    }

    /// The body keys (the request decoder converts snake_case).
    enum ExplicitKeys: String, CodingKey { case url, eventTypes, enabled }

    /// An endpoint with its secret: only in the answers that create or rotate it.
    struct EndpointWithSecret: ResponseEncodable, Sendable {
        let endpoint: WebhookStore.Endpoint
        let secret: String
        enum CodingKeys: String, CodingKey { case secret }
        func encode(to encoder: any Encoder) throws {
            try endpoint.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(secret, forKey: .secret)
        }
    }

    struct Redelivery: ResponseEncodable, Sendable {
        let id: UUID
        let status: String
    }

    func register(on group: RouterGroup<AppRequestContext>) {
        group.post("webhook-endpoints") { request, context in try await create(request, context) }
        group.get("webhook-endpoints") { request, context in try await list(request, context) }
        group.get("webhook-endpoints/:id") { _, context in try await show(context) }
        group.put("webhook-endpoints/:id") { request, context in try await change(request, context) }
        group.delete("webhook-endpoints/:id") { _, context in try await remove(context) }
        group.post("webhook-endpoints/:id/rotate-secret") { _, context in try await rotate(context) }
        group.get("webhook-endpoints/:id/deliveries") { request, context in try await deliveries(request, context) }
        group.post("webhook-endpoints/:id/deliveries/:delivery/redeliver") { _, context in try await redeliver(context) }
    }

    private func requireAdmin(_ context: AppRequestContext) throws -> UUID {
        let identity = try context.requireIdentity()
        guard identity.role.isAdmin else { throw APIError.forbidden("only admins manage webhook endpoints") }
        return identity.userId
    }

    /// Checks a URL and event types; throws 422 naming the field.
    private func validate(url: String?, eventTypes: [String]?) async throws {
        var errors: [(String, String)] = []
        if let url, let refusal = await OutboundAddress.checkWebhookURL(url, allowPrivate: allowPrivateTargets) { errors.append(("url", refusal)) }
        if let eventTypes {
            if eventTypes.isEmpty || eventTypes.count > 20 {
                errors.append(("event_types", "must list 1 to 20 types or patterns"))
            } else if let bad = eventTypes.first(where: { !MerchantWebhooks.isValidPattern($0) }) {
                errors.append(
                    (
                        "event_types",
                        "\(bad) is not one of *, order.*, payment.*, refund.* or \(MerchantWebhooks.eventTypes.map(\.rawValue).joined(separator: ", "))"
                    ))
            }
        }
        if !errors.isEmpty { throw APIError.invalid(errors) }
    }

    private static func newSecret() -> String {
        "whsec_" + SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.hexEncoded
    }

    private func create(_ request: Request, _ context: AppRequestContext) async throws -> EditedResponse<EndpointWithSecret> {
        let admin = try requireAdmin(context)
        let (input, _) = try await request.decodeJSON(EndpointInput.self, context: context)
        try await validate(url: input.url, eventTypes: input.eventTypes)
        let secret = Self.newSecret()
        let endpoint = try await webhooks.create(
            id: UUID(), url: input.url, eventTypes: Array(Set(input.eventTypes)).sorted(), enabled: input.enabled ?? true, secret: secret, createdBy: admin,
            on: pool)
        context.logger.info("webhook endpoint created", metadata: ["endpoint": "\(endpoint.id)", "url": "\(endpoint.url)"])
        return EditedResponse(status: .created, response: EndpointWithSecret(endpoint: endpoint, secret: secret))
    }

    private func list(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<WebhookStore.Endpoint> {
        _ = try requireAdmin(context)
        let page = try Page(request)
        let found = try await webhooks.endpoints(size: page.size, offset: page.offset, on: pool)
        return PageBody(items: found.endpoints, page: page.number, pageSize: page.size, total: found.total)
    }

    private func endpoint(_ context: AppRequestContext) async throws -> WebhookStore.Endpoint {
        let id = try context.parameters.requireUUID("id", "webhook endpoint")
        guard let endpoint = try await webhooks.endpoint(id, on: pool) else { throw APIError.notFound("webhook endpoint") }
        return endpoint
    }

    private func show(_ context: AppRequestContext) async throws -> WebhookStore.Endpoint {
        _ = try requireAdmin(context)
        return try await endpoint(context)
    }

    private func change(_ request: Request, _ context: AppRequestContext) async throws -> WebhookStore.Endpoint {
        _ = try requireAdmin(context)
        let id = try context.parameters.requireUUID("id", "webhook endpoint")
        let (input, _) = try await request.decodeJSON(EndpointChange.self, context: context)
        guard input.url != nil || input.eventTypes != nil || input.enabled != nil else {
            throw APIError.invalid([("url", "give at least one of url, event_types, enabled")])
        }
        try await validate(url: input.url, eventTypes: input.eventTypes)
        guard
            let changed = try await webhooks.update(
                id, url: input.url, eventTypes: input.eventTypes.map { Array(Set($0)).sorted() }, enabled: input.enabled, on: pool)
        else { throw APIError.notFound("webhook endpoint") }
        return changed
    }

    private func remove(_ context: AppRequestContext) async throws -> Response {
        _ = try requireAdmin(context)
        let id = try context.parameters.requireUUID("id", "webhook endpoint")
        guard try await webhooks.delete(id, on: pool) else { throw APIError.notFound("webhook endpoint") }
        return Response(status: .noContent)
    }

    private func rotate(_ context: AppRequestContext) async throws -> EndpointWithSecret {
        _ = try requireAdmin(context)
        let id = try context.parameters.requireUUID("id", "webhook endpoint")
        let secret = Self.newSecret()
        guard let endpoint = try await webhooks.rotateSecret(id, to: secret, overlap: secretOverlap, on: pool) else {
            throw APIError.notFound("webhook endpoint")
        }
        return EndpointWithSecret(endpoint: endpoint, secret: secret)
    }

    private func deliveries(_ request: Request, _ context: AppRequestContext) async throws -> PageBody<WebhookStore.Delivery> {
        _ = try requireAdmin(context)
        let endpoint = try await endpoint(context)
        let page = try Page(request)
        let status = request.uri.queryParameters.get("status")
        if let status, !["PENDING", "SENDING", "SUCCEEDED", "FAILED"].contains(status) {
            throw APIError.badRequest("status must be PENDING, SENDING, SUCCEEDED or FAILED")
        }
        let found = try await webhooks.deliveries(endpointId: endpoint.id, status: status, size: page.size, offset: page.offset, on: pool)
        return PageBody(items: found.deliveries, page: page.number, pageSize: page.size, total: found.total)
    }

    private func redeliver(_ context: AppRequestContext) async throws -> EditedResponse<Redelivery> {
        _ = try requireAdmin(context)
        let id = try context.parameters.requireUUID("id", "webhook endpoint")
        let delivery = try context.parameters.requireUUID("delivery", "delivery")
        guard try await pool.withConnection({ try await webhooks.redeliver(delivery, endpointId: id, on: $0) }) else { throw APIError.notFound("delivery") }
        return EditedResponse(status: .accepted, response: Redelivery(id: delivery, status: "PENDING"))
    }
}
