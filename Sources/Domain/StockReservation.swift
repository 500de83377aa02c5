import Foundation

/// All lines of an order or none: the rule the stock worker reserves by.
package enum StockReservation {
    /// What reserving `lines` against `available` stock comes to.
    package enum Plan: Sendable, Equatable {
        /// Take these quantities, in this order (by product id, the order rows are locked in).
        case take([OrderLine])
        /// This product (the first by id) has less than the order wants.
        case short(UUID)
    }

    /// The order's wanted quantity per product (lines of one product summed), by product id.
    package static func wanted(_ lines: [OrderLine]) -> [OrderLine] {
        var wanted: [UUID: Int] = [:]
        for line in lines { wanted[line.productId, default: 0] += line.quantity }
        return wanted.map { OrderLine(productId: $0.key, quantity: $0.value) }.sorted { $0.productId.uuidString < $1.productId.uuidString }
    }

    /// Plans the reservation of `lines` given each product's `available` stock (a product
    /// missing from it has none).
    package static func plan(_ lines: [OrderLine], available: [UUID: Int]) -> Plan {
        let wanted = wanted(lines)
        if let short = wanted.first(where: { (available[$0.productId] ?? 0) < $0.quantity }) { return .short(short.productId) }
        return .take(wanted)
    }

    /// A placed order of a batch, as the stock worker found it under its locks.
    package struct PlacedOrder: Sendable, Equatable {
        package let orderId: UUID
        package let lines: [OrderLine]
        /// It still waits for its reservation (PENDING); one cancelled meanwhile takes nothing.
        package let pending: Bool
        /// It holds a reservation already (the same order placed again by a re-drive).
        package let reserved: Bool

        /// Creates the order's facts.
        package init(orderId: UUID, lines: [OrderLine], pending: Bool, reserved: Bool) {
            self.orderId = orderId
            self.lines = lines
            self.pending = pending
            self.reserved = reserved
        }
    }

    /// What one placed order of a batch comes to.
    package enum Decision: Sendable, Equatable {
        /// No longer pending: nothing is taken and nothing answered.
        case skip
        /// Reserved before: answered again, nothing taken a second time.
        case reserved
        /// Take these quantities (by product id) and answer reserved.
        case take([OrderLine])
        /// This product has less than the order wants: answer rejected.
        case short(UUID)
    }

    /// Decides a batch of placed orders in arrival order against the products' `available`
    /// stock, each order all lines or none, as ``plan(_:available:)`` decides one: what an
    /// order takes is no longer there for the orders after it, and an order that appears
    /// twice is reserved once.
    package static func plan(batch orders: [PlacedOrder], available: [UUID: Int]) -> [Decision] {
        var left = available
        var reservedHere = Set<UUID>()
        return orders.map { order in
            guard order.pending else { return .skip }
            if order.reserved || reservedHere.contains(order.orderId) { return .reserved }
            switch plan(order.lines, available: left) {
            case .short(let productId):
                return .short(productId)
            case .take(let lines):
                for line in lines { left[line.productId, default: 0] -= line.quantity }
                reservedHere.insert(order.orderId)
                return .take(lines)
            }
        }
    }
}
