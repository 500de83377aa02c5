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
}
