/// An amount in a currency's minor units (cents), never a floating-point number.
package struct Money: Sendable, Hashable, Codable {
    /// Minor units.
    package var cents: Int
    /// ISO 4217 code, upper case.
    package var currency: String

    /// Creates an amount.
    package init(cents: Int, currency: String) {
        self.cents = cents
        self.currency = currency
    }

    /// Whether `code` looks like an ISO 4217 currency code (three upper-case letters).
    package static func isValidCurrency(_ code: String) -> Bool {
        code.count == 3 && code.allSatisfy { $0.isASCII && $0.isUppercase }
    }

    /// Minor units as a decimal amount with two places: `123456` → `1234.56`, `-5` → `-0.05`.
    package static func format(_ cents: Int) -> String {
        let sign = cents < 0 ? "-" : ""
        let magnitude = cents.magnitude
        let fraction = magnitude % 100
        return "\(sign)\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    /// `unit × quantity`, or nil on overflow.
    package static func lineTotal(unitCents: Int, quantity: Int) -> Int? {
        let (product, overflow) = unitCents.multipliedReportingOverflow(by: quantity)
        return overflow ? nil : product
    }
}
