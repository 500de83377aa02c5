import Foundation

/// The rules for a postal address, shared by checkout and the address book.
enum AddressRules {
    /// Problems as (field, message), with field names under `prefix` (e.g. `shipping_address.`).
    static func problems(line1: String, line2: String?, city: String, postalCode: String, country: String, prefix: String = "") -> [(String, String)] {
        var problems: [(String, String)] = []
        for (field, value, limit) in [("line1", line1, 200), ("city", city, 100), ("postal_code", postalCode, 20)]
        where !FieldRules.isName(value, max: limit) {
            problems.append((prefix + field, FieldRules.nameRule(max: limit)))
        }
        if !FieldRules.isOptionalName(line2, max: 200) {
            problems.append((prefix + "line2", "must be at most 200 characters, without control characters or line breaks"))
        }
        if !FieldRules.isUppercaseCode(country, count: 2) {
            problems.append((prefix + "country", "must be an ISO 3166-1 alpha-2 code such as DE"))
        }
        return problems
    }
}
