import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import Store

/// A browser face's templates (Mustache, under `Resources/<face>`: the console's, the
/// storefront's), its stylesheet and script, and the headers every page carries: a
/// Content-Security-Policy that allows only this origin's script and style (no inline script),
/// no framing, no caching.
struct ConsolePages: Sendable {
    /// The console's pages allow nothing from anywhere but the API itself.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    /// The storefront's may also show product images from https URLs (the catalog's own).
    static let storefrontPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    private let library: MustacheLibrary
    /// The face's stylesheet and script, served as is.
    let assets: [String: (type: String, body: String)]
    let policy: String

    /// Loads the templates and assets bundled with the API under `Resources/<face>`.
    init(face: String = "console", policy: String = Self.contentSecurityPolicy) async throws {
        guard let root = Bundle.module.url(forResource: face, withExtension: nil) else {
            throw ConsoleError("the \(face) templates are missing from the API bundle")
        }
        library = try await MustacheLibrary(directory: root.path)
        var assets: [String: (String, String)] = [:]
        for (name, type) in [("\(face).css", "text/css; charset=utf-8"), ("\(face).js", "text/javascript; charset=utf-8")] {
            assets[name] = (type, try String(contentsOf: root.appendingPathComponent(name), encoding: .utf8))
        }
        self.assets = assets
        self.policy = policy
    }

    /// Renders template `name` with `values`.
    func render(_ name: String, _ values: [String: Any]) throws -> String {
        guard let html = library.render(Self.pruned(values) ?? [String: Any](), withTemplate: name) else { throw ConsoleError("no console template \(name)") }
        return html
    }

    /// `values` without nil and empty-string entries, at every depth: Mustache treats any
    /// present value as true, so `{{#flag}}` must not see an empty flag.
    static func pruned(_ value: Any) -> Any? {
        switch value {
        case let dictionary as [String: Any]:
            return dictionary.compactMapValues(pruned)
        case let array as [[String: Any]]:
            return array.map { $0.compactMapValues(pruned) }
        case let array as [Any]:
            return array.compactMap(pruned)
        case let text as String:
            return text.isEmpty ? nil : text
        default:
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional {
                guard let wrapped = mirror.children.first?.value else { return nil }
                return pruned(wrapped)
            }
            return value
        }
    }

    /// An HTML response of template `name`, under the face's policy unless the page brings its
    /// own (the storefront's pay page, which loads Stripe.js).
    func page(_ name: String, _ values: [String: Any], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], policy: String? = nil) throws
        -> Response
    {
        var fields = headers
        fields[.contentType] = "text/html; charset=utf-8"
        fields[.contentSecurityPolicy] = policy ?? self.policy
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: try render(name, values))))
    }

    /// A 303 to `location` (after a form post), with `cookies` set.
    static func redirect(_ location: String, cookies: [String] = []) -> Response {
        var fields: HTTPFields = [.location: location]
        for cookie in cookies { fields.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .seeOther, headers: fields)
    }
}

/// A console failure that is the operator's to fix (a missing template).
struct ConsoleError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// How the console shows figures.
enum ConsoleFormat {
    static func money(_ cents: Int, _ currency: String) -> String {
        let sign = cents < 0 ? "-" : ""
        let value = abs(cents)
        return "\(sign)\(value / 100).\(String(format: "%02d", value % 100)) \(currency)"
    }

    static func date(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return formatter.string(from: date) + " UTC"
    }

    /// An order's lines, totals and shipping address as both faces' order pages show them.
    static func orderBasics(_ order: OrderStore.Order) -> [String: Any] {
        let money = { (cents: Int) in Self.money(cents, order.currency) }
        return [
            "items": order.items.map {
                [
                    "name": $0.name, "sku": $0.sku, "quantity": $0.quantity, "unit": money($0.unitPriceCents), "line": money($0.unitPriceCents * $0.quantity),
                    "product_id": $0.productId.uuidString.lowercased(), "url": ShopURLs.product($0.productId, name: $0.name),
                ] as [String: Any]
            },
            "subtotal": money(order.subtotalCents), "tax": money(order.taxCents), "shipping": money(order.shippingCents), "total": money(order.totalCents),
            "address": [
                "line1": order.shippingAddress.line1, "line2": order.shippingAddress.line2 ?? "", "city": order.shippingAddress.city,
                "postal_code": order.shippingAddress.postalCode, "country": order.shippingAddress.country,
            ],
        ]
    }

    /// Orders per minute as a bar chart in SVG (server-rendered; no script, no library).
    static func barChart(_ counts: [Int], width: Int = 1200, height: Int = 140) -> String {
        let top = max(counts.max() ?? 0, 1)
        let barWidth = Double(width) / Double(max(counts.count, 1))
        var bars = ""
        for (index, count) in counts.enumerated() where count > 0 {
            let barHeight = Double(height - 14) * Double(count) / Double(top)
            let x = Double(index) * barWidth
            bars +=
                #"<rect x="\#(String(format: "%.1f", x + 1))" y="\#(String(format: "%.1f", Double(height) - barHeight))" width="\#(String(format: "%.1f", max(barWidth - 2, 1)))" height="\#(String(format: "%.1f", barHeight))"><title>\#(count) order(s), \#(counts.count - index - 1) min ago</title></rect>"#
        }
        return
            #"<svg class="chart" role="img" aria-label="orders per minute over the last hour, at most \#(top)" viewBox="0 0 \#(width) \#(height)" xmlns="http://www.w3.org/2000/svg"><text x="2" y="10">\#(top)/min</text><line x1="0" y1="\#(height - 0)" x2="\#(width)" y2="\#(height - 0)"/>\#(bars)</svg>"#
    }
}
