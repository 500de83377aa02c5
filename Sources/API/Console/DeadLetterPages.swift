import Foundation
import Hummingbird
import OperatorTools
import Store

/// Dead letters: the CLI's list, filters, replay (dry run first, an optional rate, the replay
/// guard and its lineage headers) and purge, through the same ``DeadLetters`` the `emporium
/// dlq` commands use. Each replay and purge goes to the audit log.
struct DeadLetterPages: Sendable {
    let controller: ConsoleController
    private var dependencies: ConsoleDependencies { controller.dependencies }
    /// A page lists at most this many letters (the CLI's scan bound still applies per queue).
    static let listLimit = 200

    func register(on router: Router<AppRequestContext>) {
        router.get("admin/dead-letters") { request, context in try await controller.guarded(request, context, handler: list) }
        router.get("admin/dead-letters/:id") { request, context in try await controller.guarded(request, context, handler: show) }
        router.post("admin/dead-letters/replay") { request, context in try await controller.guarded(request, context, handler: replay) }
        router.post("admin/dead-letters/purge") { request, context in try await controller.guarded(request, context, handler: purge) }
    }

    /// The filter in a query string or a form: queue, type, order, error (a regular
    /// expression), older/newer (90, 30s, 5m, 2h, 1d), and selected message ids.
    private func filter(_ field: (String) -> String?, ids: [String]) throws -> (DeadLetterFilter, [(String, String)]) {
        var filter = DeadLetterFilter()
        var kept: [(String, String)] = []
        if let queue = field("queue") {
            filter.queues = [queue]
            kept.append(("queue", queue))
        }
        if let type = field("type") {
            filter.type = type
            kept.append(("type", type))
        }
        if let order = field("order") {
            guard UUID(uuidString: order) != nil else { throw APIError.invalid([("order", "must be an order id")]) }
            filter.orderId = order
            kept.append(("order", order))
        }
        if let error = field("error") {
            guard error.count <= 200 else { throw APIError.invalid([("error", "at most 200 characters")]) }
            filter.errorPattern = error
            kept.append(("error", error))
        }
        for (name, apply) in [("older", { (d: Duration) in filter.olderThan = d }), ("newer", { (d: Duration) in filter.newerThan = d })] {
            if let text = field(name) {
                guard let duration = parseDuration(text) else { throw APIError.invalid([(name, "must be a duration such as 90, 30s, 5m, 2h or 1d")]) }
                apply(duration)
                kept.append((name, text))
            }
        }
        filter.messageIds = Set(ids.filter { !$0.isEmpty }.prefix(1_000))
        for id in filter.messageIds { kept.append(("id", id)) }
        return (filter, kept)
    }

    private func tools() -> DeadLetters { dependencies.deadLetters }

    private func letterValues(_ letter: DeadLetter) -> [String: Any] {
        [
            "message_id": letter.messageId, "queue": letter.queue, "type": letter.type ?? "", "order_id": letter.orderId ?? "", "error": letter.error,
            "error_class": letter.errorClass ?? "", "attempts": letter.attempts, "replays": letter.replayCount, "age": "\(letter.ageSeconds) s",
            "guarded": letter.replayCount >= DeadLetters.guardLimit,
        ]
    }

    private func list(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let query = request.uri.queryParameters
        let field = { (name: String) in query.get(name).map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 } }
        var values = controller.base(viewer, title: "Dead letters", section: "dlq")
        do {
            let (filter, kept) = try filter(field, ids: [])
            let letters = try await tools().list(filter, limit: Self.listLimit)
            values["letters"] = letters.map(letterValues)
            values["empty"] = letters.isEmpty
            values["count"] = letters.count
            values["kept"] = kept.map { ["name": $0.0, "value": $0.1] }
            values["stats"] = try await tools().stats().map { ["queue": $0.queue, "depth": $0.depth, "oldest": $0.oldestAgeSeconds.map { "\($0) s" } ?? "-"] }
        } catch let error as DeadLetterError {
            values["problem"] = error.description
            values["empty"] = true
        }
        values["filter"] = [
            "queue": field("queue") ?? "", "type": field("type") ?? "", "order": field("order") ?? "", "error": field("error") ?? "",
            "older": field("older") ?? "", "newer": field("newer") ?? "",
        ]
        values["guard_limit"] = DeadLetters.guardLimit
        return try controller.pages.page("dead-letters", values)
    }

    private func show(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        guard let id = context.parameters.get("id"), id.count <= 200 else { throw APIError.notFound("dead letter") }
        let letter: DeadLetter?
        do { letter = try await tools().show(id) } catch let error as DeadLetterError { throw APIError(status: .serviceUnavailable, detail: error.description) }
        guard let letter else { throw APIError.notFound("dead letter") }
        var values = controller.base(viewer, title: "Dead letter \(id)", section: "dlq")
        values["letter"] = letterValues(letter)
        values["headers"] = letter.headers.sorted { $0.key < $1.key }.map { ["name": $0.key, "value": $0.value] }
        values["body"] = Self.pretty(letter.body)
        return try controller.pages.page("dead-letter", values)
    }

    /// A JSON body indented for reading; anything else as it is.
    static func pretty(_ body: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8), options: [.fragmentsAllowed]),
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed])
        else { return body }
        return String(decoding: data, as: UTF8.self)
    }

    /// Replays what the form selects: a dry run shows the list and asks to go ahead; the real
    /// run republishes with the rate and the guard as asked.
    private func replay(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let (filter, kept) = try filter({ form[$0] }, ids: form.all("id"))
        guard !filter.isEmpty || form["all"] == "yes" else {
            throw APIError.invalid([("filter", "choose what to replay: select letters, give a filter, or replay all")])
        }
        var rate: Double?
        if let text = form["rate"] {
            guard let value = Double(text), value > 0, value <= 1_000 else { throw APIError.invalid([("rate", "must be a number per second from 0 to 1000")]) }
            rate = value
        }
        let force = form["force"] == "yes" || form["force"] == "on"
        let dryRun = form["confirm"] != "yes"
        let report: ReplayReport
        do {
            report = try await tools().replay(filter, dryRun: dryRun, rate: rate, force: force)
        } catch let error as DeadLetterError {
            throw APIError(status: .serviceUnavailable, detail: error.description)
        }
        if !dryRun, !report.replayed.isEmpty {
            try await dependencies.pool.withConnection { db in
                try await AuditStore().record(
                    actor: viewer.userId, action: "dlq.replay", objectType: "dead_letters", objectId: kept.map { "\($0.0)=\($0.1)" }.joined(separator: "&"),
                    before: nil, after: #"{"replayed":\#(report.replayed.count),"refused":\#(report.refused.count)}"#, on: db)
                for orderId in Set(report.replayed.compactMap(\.orderId)) {
                    try await AuditStore().record(
                        actor: viewer.userId, action: "dlq.replay", objectType: "order", objectId: orderId.lowercased(), before: nil,
                        after: #"{"replayed":true}"#, on: db)
                }
            }
            context.logger.notice(
                "dead letters replayed from the console", metadata: ["replayed": "\(report.replayed.count)", "refused": "\(report.refused.count)"])
        }
        var values = controller.base(viewer, title: dryRun ? "Replay: dry run" : "Replayed", section: "dlq")
        values["dry_run"] = dryRun
        values["replayed"] = report.replayed.map(letterValues)
        values["replayed_count"] = report.replayed.count
        values["refused"] = report.refused.map(letterValues)
        values["refused_count"] = report.refused.count
        values["has_refused"] = !report.refused.isEmpty
        values["can_replay"] = dryRun && !report.replayed.isEmpty
        values["fields"] = (kept + [("rate", form["rate"] ?? ""), ("force", force ? "yes" : "no")] + (form["all"] == "yes" ? [("all", "yes")] : []))
            .map { ["name": $0.0, "value": $0.1] }
        values["summary"] = String(format: "%@ %d message(s) in %.1f s", dryRun ? "would replay" : "replayed", report.replayed.count, report.elapsedSeconds)
        return try controller.pages.page("dlq-replay", values)
    }

    private func purge(_ request: Request, _ context: AppRequestContext, _ viewer: SessionViewer, _ form: FormFields) async throws -> Response {
        let (filter, kept) = try filter({ form[$0] }, ids: form.all("id"))
        guard !filter.isEmpty || form["all"] == "yes" else {
            throw APIError.invalid([("filter", "choose what to purge: select letters, give a filter, or purge all")])
        }
        guard form["confirm"] == "yes" else {
            let count = (try? await tools().list(filter, limit: DeadLetters.scanLimit).count) ?? 0
            return try controller.confirmPage(
                viewer, question: "Delete \(count) dead letter(s) for good? They cannot be replayed afterwards.", action: "/admin/dead-letters/purge",
                fields: kept + (form["all"] == "yes" ? [("all", "yes")] : []), back: "/admin/dead-letters")
        }
        let removed: [DeadLetter]
        do { removed = try await tools().purge(filter) } catch let error as DeadLetterError {
            throw APIError(status: .serviceUnavailable, detail: error.description)
        }
        try await dependencies.pool.withConnection { db in
            try await AuditStore().record(
                actor: viewer.userId, action: "dlq.purge", objectType: "dead_letters", objectId: kept.map { "\($0.0)=\($0.1)" }.joined(separator: "&"),
                before: nil, after: #"{"purged":\#(removed.count)}"#, on: db)
        }
        context.logger.notice("dead letters purged from the console", metadata: ["purged": "\(removed.count)"])
        return ConsolePages.redirect("/admin/dead-letters")
    }
}
