import Hummingbird

/// A page of a list in the console or the storefront (orders, products, users, search
/// results): which page was asked for and the links to its neighbours, so every list reads
/// `page` and links its pages the same way.
struct ListPage {
    /// The page shown, from 1.
    let number: Int
    /// Rows per page.
    let size: Int
    /// Rows before this page.
    var offset: Int { (number - 1) * size }

    /// The page that `query`'s `page` asks for, of `size` rows. A number past `deepest` reads
    /// as `deepest` (beyond it PostgreSQL would skip too many rows for one request); anything
    /// below 1, or not a number, as page 1.
    init(_ query: Parameters, size: Int, deepest: Int = 10_000) {
        self.number = max(1, min(Int(query.get("page") ?? "1") ?? 1, deepest))
        self.size = size
    }

    /// A query string's parameters other than `page`, each followed by `&` (empty when there
    /// are none): what a link to another page of the same list keeps.
    static func otherParameters(of query: String?) -> String {
        let kept = (query ?? "").split(separator: "&").filter { !$0.hasPrefix("page=") }
        return kept.isEmpty ? "" : kept.joined(separator: "&") + "&"
    }

    /// The values of the `pager` partial for a list at `path` of `total` rows: the page
    /// number, and links to the previous and next pages (when there are such) that keep the
    /// list's other query parameters (`keep`, empty or ending in `&`). The links read
    /// "← Previous" and "Next →" unless the list names them otherwise (newest first: "← Newer",
    /// "Older →").
    func pagerValues(path: String, keeping keep: String = "", total: Int, labels: (previous: String, next: String) = ("← Previous", "Next →"))
        -> [String: Any]
    {
        var values: [String: Any] = ["page": number, "previous_label": labels.previous, "next_label": labels.next]
        if number > 1 { values["previous"] = "\(path)?\(keep)page=\(number - 1)" }
        if number * size < total { values["next"] = "\(path)?\(keep)page=\(number + 1)" }
        return values
    }
}

extension Dictionary where Key == String, Value == Any {
    /// Adds a pager's values (``ListPage/pagerValues(path:keeping:total:labels:)``) to a page's.
    mutating func addPager(_ pager: [String: Any]) { merge(pager) { _, pagerValue in pagerValue } }
}
