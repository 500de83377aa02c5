import Postgres

// One page of a list and the number of all its items, for every paged list (API, console,
// storefront).
//
// The page and its count are two statements over the same source, sent in one round trip.
// They used to be one statement with `count(*) OVER ()`, which has two faults:
// - past the last page no row is left to carry the window's count, so the list said its
//   total was 0;
// - the window makes the server read and count every match, with all of the page's
//   columns, before it can sort and return a page of them. For the admin's list of every
//   order, that took over a second at 1,000,000 orders.
// Now the page reads only its rows (along an index when one fits its order), and the count
// reads only what counting needs. Each statement reads the table as committed when it starts
// (READ COMMITTED), so a row committed between the two can be in the count and not on the
// page, or the other way round; a list that moves while it is read pages that way anyway.

extension PostgresConnection {
    /// The rows `SELECT columns source ORDER BY orderBy` gives from `offset`, at most `size`,
    /// and how many rows `source` has in all.
    ///
    /// `source` is the `FROM … WHERE …` of the list. It may use `$1` to `$n` for `parameters`,
    /// and the page's limit and offset follow them. `prefix` is a `WITH` clause that both
    /// statements need, or empty.
    func page(
        select columns: String, _ source: String, orderBy: String, _ parameters: [any PostgresEncodable] = [],
        size: Int, offset: Int, prefix: String = ""
    ) async throws -> (rows: PostgresRows, total: Int) {
        let limit = parameters.count + 1
        let answers = try await queries([
            PostgresStatement(
                "\(prefix) SELECT \(columns) \(source) ORDER BY \(orderBy) LIMIT $\(limit) OFFSET $\(limit + 1)", parameters + [size, offset]),
            PostgresStatement("\(prefix) SELECT count(*) AS total \(source)", parameters),
        ])
        return (answers[0], try answers[1][0].decode(Int.self, "total"))
    }
}

extension PostgresPool {
    /// ``PostgresConnection/page(select:_:orderBy:_:size:offset:prefix:)`` on a pooled connection.
    func page(
        select columns: String, _ source: String, orderBy: String, _ parameters: [any PostgresEncodable] = [],
        size: Int, offset: Int, prefix: String = ""
    ) async throws -> (rows: PostgresRows, total: Int) {
        try await withConnection {
            try await $0.page(select: columns, source, orderBy: orderBy, parameters, size: size, offset: offset, prefix: prefix)
        }
    }
}
