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
    package func prepare(_ batch: [(input: StockEvent, event: EventEnvelope)], in db: PostgresConnection) async throws {
        var products = Set<UUID>()
        var cancelled: [UUID] = []
        for (input, event) in batch {
            switch input {
            case .orderPlaced: products.formUnion(try event.payload(as: OrderPlaced.self).lines.map(\.productId))
            case .orderCancelled: cancelled.append(try event.payload(as: OrderOutcome.self).orderId)
            case .paymentRefunded: products.formUnion((try event.payload(as: PaymentRefunded.self).restock ?? []).map(\.productId))
            case .orderConfirmed: break
            }
        }
        if !cancelled.isEmpty { products.formUnion(try await reservations.reservedProducts(of: cancelled, on: db)) }
        if !products.isEmpty { _ = try await catalog.lockStock(Array(products), on: db) }
    }

    private func reserve(_ placed: OrderPlaced, cause: EventEnvelope, _ db: PostgresConnection) async throws -> [EventEnvelope] {
        // An order cancelled before its reservation must not take stock.
        guard try await orders.status(of: placed.orderId, lock: true, on: db) == .pending else { return [] }
        func answer(_ type: EventType, short: UUID? = nil) throws -> [EventEnvelope] {
            [
                try EventEnvelope(
                    type: type, orderId: placed.orderId, payload: StockOutcome(orderId: placed.orderId, productId: short), traceparent: cause.traceparent)
            ]
        }
        // Reserved before (the same order placed again by a re-drive, under a new message id):
        // the answer never reached the order worker, so give it again instead of taking stock twice.
        if try await reservations.hasReservation(placed.orderId, on: db) { return try answer(.stockReserved) }
        let available = try await catalog.lockStock(StockReservation.wanted(placed.lines).map(\.productId), on: db)
        switch StockReservation.plan(placed.lines, available: available) {
        case .short(let productId):
            return try answer(.stockRejected, short: productId)
        case .take(let lines):
            // The conditional update is the final no-oversell check; under the locks it holds.
            guard try await catalog.takeStock(lines, on: db) else {
                throw TransientFailure("the stock of order \(placed.orderId)'s products changed under their locks")
            }
            try await reservations.reserve(placed.orderId, lines: lines, on: db)
            return try answer(.stockReserved)
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
