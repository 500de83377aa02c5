import Domain
import Foundation
import Messaging
import Postgres
import Store

/// Reserves stock for placed orders (all lines or none), commits it on confirmation, releases
/// it, once, on cancellation, and takes back a refund's restocked lines, once.
package struct StockHandler: EventHandler {
    package static var role: WorkerRole { .stock }
    private let orders = OrderStore()
    private let catalog = CatalogStore()
    private let reservations = StockStore()
    private let payments = PaymentStore()

    /// Creates the handler.
    package init() {}

    /// Committing a confirmed order's reservation is bookkeeping nobody waits on: below
    /// saturation it may wait for company, and goes along with the next placement's batch.
    /// Placements are on the saga's path, and a cancellation's release frees stock for
    /// others, so neither waits.
    package func mayWait(_ input: StockEvent) -> Bool { input == .orderConfirmed }

    /// A placement of a prepared batch: its order (so the answer need not read the payload
    /// again) and what the batch decided for it.
    package struct Decided: Sendable, Equatable {
        package let orderId: UUID
        package let decision: StockReservation.Decision
    }

    package func handle(_ input: StockEvent, _ event: EventEnvelope, in db: PostgresConnection) async throws -> [EventEnvelope] {
        switch input {
        case .orderPlaced: return try await reserve(event.payload(as: OrderPlaced.self), cause: event, db)
        case .orderConfirmed: try await reservations.commit(event.payload(as: OrderOutcome.self).orderId, on: db)
        case .orderCancelled: try await release(event.payload(as: OrderOutcome.self).orderId, db)
        case .paymentRefunded: try await restock(event.payload(as: PaymentRefunded.self), db)
        }
        return []
    }

    /// Locks, in id order, every product the batch's reservations and releases touch, so two
    /// batches in flight (of this process or a replica) queue on the first product they share
    /// instead of deadlocking on the second. Each order's conditional update stays the final
    /// no-oversell check.
    ///
    /// A batch of placements and confirmations (what a backlog holds) is then decided here at
    /// once, in a few statements instead of four round trips per order, because the batch
    /// holds its products' locks for as long as it runs and every other batch waits on them:
    /// the orders' rows locked and read together, each order planned in arrival order against
    /// the locked stock (``StockReservation/plan(batch:available:)``), one conditional update
    /// takes what they all take, one insert records their reservations. A batch with a
    /// release or a restock (which give stock back as they are handled) is not decided here:
    /// its orders go one by one, in arrival order, as a single message does.
    /// Returns each placement's order and decision, by event id.
    package func prepare(_ batch: [(input: StockEvent, event: EventEnvelope)], in db: PostgresConnection) async throws -> [UUID: Decided] {
        var products = Set<UUID>()
        var cancelled: [UUID] = []
        var placed: [(event: EventEnvelope, order: OrderPlaced)] = []
        var givesBack = false
        for (input, event) in batch {
            switch input {
            case .orderPlaced:
                let order = try event.payload(as: OrderPlaced.self)
                products.formUnion(order.lines.map(\.productId))
                placed.append((event, order))
            case .orderCancelled:
                cancelled.append(try event.payload(as: OrderOutcome.self).orderId)
                givesBack = true
            case .paymentRefunded:
                products.formUnion((try event.payload(as: PaymentRefunded.self).restock ?? []).map(\.productId))
                givesBack = true
            case .orderConfirmed: break
            }
        }
        if !cancelled.isEmpty { products.formUnion(try await reservations.reservedProducts(of: cancelled, on: db)) }
        guard !products.isEmpty else { return [:] }
        let available = try await catalog.lockStock(Array(products), on: db)
        guard !givesBack, !placed.isEmpty else { return [:] }
        return try await decide(placed, available: available, db)
    }

    /// Applies a prepared batch's decision for an `order.placed`; anything else, and a batch
    /// decided one by one, is handled as a single message.
    package func handle(
        _ input: StockEvent, _ event: EventEnvelope, prepared: [UUID: Decided], in db: PostgresConnection
    ) async throws -> [EventEnvelope] {
        guard input == .orderPlaced, let decided = prepared[event.id] else { return try await handle(input, event, in: db) }
        switch decided.decision {
        case .skip: return []
        case .reserved, .take: return try answer(.stockReserved, decided.orderId, cause: event)
        case .short(let productId): return try answer(.stockRejected, decided.orderId, short: productId, cause: event)
        }
    }

    /// Decides the batch's placements under the products' locks and applies what they take.
    private func decide(
        _ placed: [(event: EventEnvelope, order: OrderPlaced)], available: [UUID: Int], _ db: PostgresConnection
    ) async throws -> [UUID: Decided] {
        let orderIds = Array(Set(placed.map(\.order.orderId)))
        let statuses = try await orders.lockedStatuses(of: orderIds, on: db)
        let reservedBefore = try await reservations.reservedOrders(among: orderIds, on: db)
        let decisions = StockReservation.plan(
            batch: placed.map {
                StockReservation.PlacedOrder(
                    orderId: $0.order.orderId, lines: $0.order.lines, pending: statuses[$0.order.orderId] == .pending,
                    reserved: reservedBefore.contains($0.order.orderId))
            },
            available: available)
        var taken: [(orderId: UUID, lines: [OrderLine])] = []
        for (item, decision) in zip(placed, decisions) {
            if case .take(let lines) = decision { taken.append((item.order.orderId, lines)) }
        }
        if !taken.isEmpty {
            // The conditional update is the final no-oversell check; under the locks it holds.
            guard try await catalog.takeStock(StockReservation.wanted(taken.flatMap(\.lines)), on: db) else {
                throw TransientFailure("the stock of a batch's products changed under their locks")
            }
            try await reservations.reserve(taken, on: db)
        }
        var byEvent: [UUID: Decided] = [:]
        for (item, decision) in zip(placed, decisions) { byEvent[item.event.id] = Decided(orderId: item.order.orderId, decision: decision) }
        return byEvent
    }

    /// The answer to a placement: `stock.reserved`, or `stock.rejected` naming the short product.
    private func answer(_ type: EventType, _ orderId: UUID, short: UUID? = nil, cause: EventEnvelope) throws -> [EventEnvelope] {
        [try EventEnvelope(type: type, orderId: orderId, payload: StockOutcome(orderId: orderId, productId: short), traceparent: cause.traceparent)]
    }

    private func reserve(_ placed: OrderPlaced, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        // An order cancelled before its reservation must not take stock.
        guard try await orders.status(of: placed.orderId, lock: true, on: db) == .pending else { return [] }
        // Reserved before (the same order placed again by a re-drive, under a new message id):
        // the answer never reached the order worker, so give it again instead of taking stock twice.
        if try await reservations.hasReservation(placed.orderId, on: db) { return try answer(.stockReserved, placed.orderId, cause: cause) }
        let available = try await catalog.lockStock(StockReservation.wanted(placed.lines).map(\.productId), on: db)
        switch StockReservation.plan(placed.lines, available: available) {
        case .short(let productId):
            return try answer(.stockRejected, placed.orderId, short: productId, cause: cause)
        case .take(let lines):
            // The conditional update is the final no-oversell check; under the locks it holds.
            guard try await catalog.takeStock(lines, on: db) else {
                throw TransientFailure("the stock of order \(placed.orderId)'s products changed under their locks")
            }
            try await reservations.reserve(placed.orderId, lines: lines, on: db)
            return try answer(.stockReserved, placed.orderId, cause: cause)
        }
    }

    /// Returns a refund's restocked lines to stock, exactly once: the refund's row records
    /// that it was done.
    private func restock(_ refund: PaymentRefunded, _ db: PostgresConnection) async throws {
        guard let lines = refund.restock, !lines.isEmpty, try await payments.markRestocked(refund.refundId, on: db) else { return }
        try await catalog.returnStock(lines, on: db)
    }

    /// Releases reserved or committed stock; the conditional update makes a second release
    /// (a redelivery, a duplicate event) find nothing to give back.
    private func release(_ orderId: UUID, _ db: PostgresConnection) async throws {
        try await catalog.returnStock(try await reservations.release(orderId, on: db), on: db)
    }
}
