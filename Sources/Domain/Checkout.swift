import Foundation

/// The rules that turn a cart into an order: every line still sold, one currency, prices as
/// they are now (a price that changed since a line was added is shown to the customer before
/// they pay it), totals that fit. Pure: the caller reads the lines and acts on the decision.
package enum Checkout {
    /// A cart or an order holds at most this many lines.
    package static let maxLines = 100

    /// A cart line with its product as it is now.
    package struct Line: Sendable {
        package let productId: UUID
        package let name: String
        package let sku: String
        package let quantity: Int
        /// The price captured when the line was added or last changed.
        package let capturedCents: Int
        /// The product's price now.
        package let currentCents: Int
        package let currency: String
        package let isActive: Bool

        package init(productId: UUID, name: String, sku: String, quantity: Int, capturedCents: Int, currentCents: Int, currency: String, isActive: Bool) {
            self.productId = productId
            self.name = name
            self.sku = sku
            self.quantity = quantity
            self.capturedCents = capturedCents
            self.currentCents = currentCents
            self.currency = currency
            self.isActive = isActive
        }
    }

    /// What a line's problem is, for the customer (keyed by product).
    package struct LineNote: Sendable, Equatable {
        package let productId: UUID
        package let message: String
    }

    /// An order's amounts, all in `currency`'s minor units.
    package struct Totals: Sendable, Equatable {
        package let subtotalCents: Int
        package let taxCents: Int
        package let shippingCents: Int
        package let totalCents: Int
        package let currency: String
    }

    /// What to do with the cart.
    package enum Decision: Sendable, Equatable {
        /// Place the order at these totals (each line at its current price).
        case place(Totals)
        /// The cart is empty.
        case empty
        /// More lines than ``maxLines``.
        case tooManyLines
        /// Some products are no longer sold.
        case unavailable([LineNote])
        /// The lines are in more than one currency.
        case mixedCurrencies
        /// A sum overflows.
        case tooLarge
        /// Prices changed and the customer has not agreed to the new total: the cart should
        /// take the current prices, and the customer sees `total` before placing again.
        case pricesChanged([LineNote], total: Int)
        /// The customer agreed to a total that is not the one at the current prices.
        case totalMismatch(expected: Int, actual: Int, changes: [LineNote])
    }

    /// Decides about `lines` at `pricing`, given the total the customer agreed to, if any.
    package static func decide(_ lines: [Line], pricing: Pricing, expectedTotalCents: Int?) -> Decision {
        guard let currency = lines.first?.currency else { return .empty }
        guard lines.count <= maxLines else { return .tooManyLines }
        let unavailable = lines.filter { !$0.isActive }.map {
            LineNote(productId: $0.productId, message: "\($0.name) is no longer sold; remove it from the cart")
        }
        guard unavailable.isEmpty else { return .unavailable(unavailable) }
        guard lines.allSatisfy({ $0.currency == currency }) else { return .mixedCurrencies }
        let changes = lines.filter { $0.capturedCents != $0.currentCents }.map {
            LineNote(
                productId: $0.productId,
                message: "\($0.name): the price changed from \(Money.format($0.capturedCents)) to \(Money.format($0.currentCents)) \($0.currency)")
        }
        guard let sums = pricing.totals(of: lines.map { ($0.currentCents, $0.quantity) }) else { return .tooLarge }
        if let expected = expectedTotalCents, expected != sums.total {
            return .totalMismatch(expected: expected, actual: sums.total, changes: changes)
        }
        if !changes.isEmpty && expectedTotalCents == nil { return .pricesChanged(changes, total: sums.total) }
        return .place(Totals(subtotalCents: sums.subtotal, taxCents: sums.tax, shippingCents: sums.shipping, totalCents: sums.total, currency: currency))
    }

    /// What the cart would cost now: the totals at the current prices (nil when the lines are
    /// empty, mixed in currency or too large to sum) and, per line, why it differs from when it
    /// was added (a price change, or no longer sold). What a checkout page shows before
    /// placement, with the same rules ``decide(_:pricing:expectedTotalCents:)`` applies.
    package struct Quote: Sendable, Equatable {
        package let totals: Totals?
        package let notes: [LineNote]
    }

    /// The ``Quote`` of `lines` at `pricing`.
    package static func quote(_ lines: [Line], pricing: Pricing) -> Quote {
        let notes = lines.compactMap { line -> LineNote? in
            if !line.isActive { return LineNote(productId: line.productId, message: "\(line.name) is no longer sold; remove it from the cart") }
            guard line.capturedCents != line.currentCents else { return nil }
            return LineNote(
                productId: line.productId,
                message: "\(line.name): the price changed from \(Money.format(line.capturedCents)) to \(Money.format(line.currentCents)) \(line.currency)")
        }
        guard let currency = lines.first?.currency, lines.allSatisfy({ $0.currency == currency }),
            let sums = pricing.totals(of: lines.filter(\.isActive).map { ($0.currentCents, $0.quantity) })
        else { return Quote(totals: nil, notes: notes) }
        return Quote(
            totals: Totals(subtotalCents: sums.subtotal, taxCents: sums.tax, shippingCents: sums.shipping, totalCents: sums.total, currency: currency),
            notes: notes)
    }

    /// `EMP-YYMMDD-XXXXXX`: readable on the phone, unique by its random part (and the index).
    /// The day is UTC's.
    package static func newOrderNumber(now: Date = Date()) -> String {
        // The day from gmtime_r and the six characters from one 64-bit draw (5 bits each): one
        // draw per character and Foundation's ISO 8601 formatter were 0.4% of all CPU per order
        // (profile of 2026-12-06).
        // Clamped, as `time_t(_:)` traps on a value it cannot hold; the year's two digits
        // taken non-negative, as years before 1900 count below zero.
        let since1970 = now.timeIntervalSince1970.isFinite ? now.timeIntervalSince1970 : 0
        var seconds = time_t(min(max(since1970, -1e15), 1e15).rounded(.down))
        var day = tm()
        gmtime_r(&seconds, &day)
        var text = Array("EMP-".utf8)
        for part in [(Int(day.tm_year) % 100 + 100) % 100, Int(day.tm_mon) + 1, Int(day.tm_mday)] {
            text += [UInt8(ascii: "0") + UInt8(part / 10), UInt8(ascii: "0") + UInt8(part % 10)]
        }
        text.append(UInt8(ascii: "-"))
        var generator = SystemRandomNumberGenerator()
        var bits: UInt64 = generator.next()
        for _ in 0..<6 {
            text.append(orderNumberAlphabet[Int(bits & 31)])
            bits >>= 5
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// 32 characters, none that reads like another (no I, O, 0 or 1): 5 bits each.
    private static let orderNumberAlphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789".utf8)
}
