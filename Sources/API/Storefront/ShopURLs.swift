import Foundation

/// The storefront's clean product URLs: `/products/<slug>-<id>`, the slug made from the
/// product's name for people and search engines, the id for the shop (so a renamed product's
/// old links still work: they are sent on to the current URL).
enum ShopURLs {
    /// The longest slug kept: long names make unwieldy links.
    static let maxSlugLength = 60

    /// `name` in lower-case ASCII letters and digits joined by single dashes: "Café Crème,
    /// 250 g" is `cafe-creme-250-g`.
    static func slug(_ name: String) -> String {
        var slug = ""
        // Accents come apart from their letters, and only ASCII letters and digits are kept.
        for scalar in name.decomposedStringWithCanonicalMapping.lowercased().unicodeScalars {
            if scalar.isASCII, CharacterSet.alphanumerics.contains(scalar) {
                slug.unicodeScalars.append(scalar)
            } else if scalar.properties.generalCategory == .nonspacingMark {
                continue
            } else if !slug.isEmpty, !slug.hasSuffix("-") {
                slug.append("-")
            }
            if slug.count >= maxSlugLength { break }
        }
        while slug.hasSuffix("-") { slug.removeLast() }
        return slug.isEmpty ? "product" : slug
    }

    /// A product's page.
    static func product(_ id: UUID, name: String) -> String {
        "/products/\(slug(name))-\(id.uuidString.lowercased())"
    }

    /// The product id a `/products/…` path segment names: `<slug>-<id>`, or a bare id.
    static func productId(_ segment: String) -> UUID? {
        if let id = UUID(uuidString: segment) { return id }
        let uuidLength = 36
        guard segment.count > uuidLength + 1 else { return nil }
        let id = segment.suffix(uuidLength)
        guard segment.dropLast(uuidLength).hasSuffix("-") else { return nil }
        return UUID(uuidString: String(id))
    }
}
