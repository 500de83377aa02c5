/// Tax and shipping, computed on the server from configuration (`TAX_RATE_BPS`,
/// `SHIPPING_FLAT_CENTS`, `FREE_SHIPPING_OVER_CENTS`).
package struct Pricing: Sendable {
    /// Tax on the subtotal in basis points (1900 is 19 %).
    package var taxRateBasisPoints = 0
    /// Shipping per order in cents.
    package var shippingFlatCents = 0
    /// Subtotal from which shipping is free; nil: never.
    package var freeShippingOverCents: Int?

    /// Creates the pricing.
    package init(taxRateBasisPoints: Int = 0, shippingFlatCents: Int = 0, freeShippingOverCents: Int? = nil) {
        self.taxRateBasisPoints = taxRateBasisPoints
        self.shippingFlatCents = shippingFlatCents
        self.freeShippingOverCents = freeShippingOverCents
    }

    /// (tax, shipping) for a subtotal; tax rounds half up to the cent.
    package func charges(subtotal: Int) -> (tax: Int, shipping: Int) {
        let tax = (subtotal * taxRateBasisPoints + 5_000) / 10_000
        let free = freeShippingOverCents.map { subtotal >= $0 } ?? false
        return (tax, free ? 0 : shippingFlatCents)
    }

    /// The order's total for these lines (unit price, quantity): subtotal, tax, shipping and
    /// total; nil when any sum overflows.
    package func totals(of lines: [(unitCents: Int, quantity: Int)]) -> (subtotal: Int, tax: Int, shipping: Int, total: Int)? {
        var subtotal = 0
        for line in lines {
            guard let lineTotal = Money.lineTotal(unitCents: line.unitCents, quantity: line.quantity),
                case (let sum, false) = subtotal.addingReportingOverflow(lineTotal)
            else { return nil }
            subtotal = sum
        }
        let (tax, shipping) = charges(subtotal: subtotal)
        guard case (let withTax, false) = subtotal.addingReportingOverflow(tax),
            case (let total, false) = withTax.addingReportingOverflow(shipping)
        else { return nil }
        return (subtotal, tax, shipping, total)
    }
}
