import Foundation

/// The rules of a refund request: what it may cover and how much it is.
package enum RefundRules {
    /// A line of the order as a refund prices it.
    package struct OrderedLine: Sendable {
        package var productId: UUID
        package var quantity: Int
        package var unitPriceCents: Int
        package init(productId: UUID, quantity: Int, unitPriceCents: Int) {
            self.productId = productId
            self.quantity = quantity
            self.unitPriceCents = unitPriceCents
        }
    }

    /// Why a request cannot be carried out as asked.
    package enum Refusal: Error, Equatable {
        /// A field is wrong: the field and why.
        case invalid(field: String, reason: String)
        /// The request is well formed but exceeds what is left to refund.
        case exceeds(String)
    }

    /// The largest amount one refund request may name (the contract's bound).
    package static let maxAmountCents = 10_000_000_000
    /// The largest quantity of one line a refund request may name.
    package static let maxQuantity = 1_000

    /// A refund that fits: its amount and, for a refund by line, the lines and their amounts.
    package struct Plan: Sendable, Equatable {
        package var amountCents: Int
        package var lines: [Line]
        package struct Line: Sendable, Equatable {
            package var productId: UUID
            package var quantity: Int
            package var amountCents: Int
        }
    }

    /// Plans a refund of `amountCents`, or of `lines` (product and quantity; priced at what was
    /// paid per unit), never both; `restock` only with lines. The total stays within what was
    /// captured less what is refunded or being refunded (`committedCents`), and a line's
    /// quantity within what was ordered less what was refunded of it.
    package static func plan(
        amountCents: Int?, lines requested: [(productId: UUID, quantity: Int)]?, restock: Bool, ordered: [OrderedLine],
        refundedQuantities: [UUID: Int], capturedCents: Int, committedCents: Int
    ) throws(Refusal) -> Plan {
        let left = capturedCents - committedCents
        switch (amountCents, requested) {
        case (.some, .some), (nil, nil):
            throw .invalid(field: "amount_cents", reason: "give either amount_cents or lines")
        case (.some(let amount), nil):
            guard amount > 0, amount <= maxAmountCents else { throw .invalid(field: "amount_cents", reason: "must be 1 to \(maxAmountCents)") }
            guard !restock else { throw .invalid(field: "restock", reason: "restock needs lines: say which products come back") }
            guard amount <= left else { throw .exceeds("only \(left) of \(capturedCents) is left to refund") }
            return Plan(amountCents: amount, lines: [])
        case (nil, .some(let requested)):
            guard !requested.isEmpty else { throw .invalid(field: "lines", reason: "must list at least one line") }
            guard Set(requested.map(\.productId)).count == requested.count else { throw .invalid(field: "lines", reason: "lists a product twice") }
            var lines: [Plan.Line] = []
            for (index, line) in requested.enumerated() {
                guard line.quantity > 0, line.quantity <= maxQuantity else {
                    throw .invalid(field: "lines[\(index)].quantity", reason: "must be 1 to \(maxQuantity)")
                }
                guard let ordered = ordered.first(where: { $0.productId == line.productId }) else {
                    throw .invalid(field: "lines[\(index)].product_id", reason: "is not a line of this order")
                }
                let refundable = ordered.quantity - (refundedQuantities[line.productId] ?? 0)
                guard line.quantity <= refundable else {
                    throw .exceeds("only \(refundable) of product \(line.productId.uuidString.lowercased()) are left to refund")
                }
                lines.append(Plan.Line(productId: line.productId, quantity: line.quantity, amountCents: line.quantity * ordered.unitPriceCents))
            }
            let amount = lines.reduce(0) { $0 + $1.amountCents }
            guard amount > 0 else { throw .invalid(field: "lines", reason: "the lines are worth nothing") }
            guard amount <= left else { throw .exceeds("the lines are worth \(amount), but only \(left) of \(capturedCents) is left to refund") }
            return Plan(amountCents: amount, lines: lines)
        }
    }
}
