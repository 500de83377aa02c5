/// The rows a statement returned, fully read into memory.
public struct PostgresRows: Sendable, Sequence {
    /// A result column's name and type.
    public struct Column: Sendable, Hashable {
        /// The column's name (its alias when the query gives one).
        public let name: String
        /// The column's type.
        public let type: PostgresType
    }

    /// The result's columns, in order.
    public let columns: [Column]
    /// Cell values in text format, row-major; `nil` is NULL.
    let cells: [String?]
    /// Rows inserted, updated, deleted or selected, as the server reported.
    public let affectedRows: Int
    /// The server's command tag, e.g. `INSERT 0 1` or `COMMIT`.
    public let commandTag: String
    let columnIndex: [String: Int]

    init(columns: [Column], cells: [String?], affectedRows: Int, commandTag: String) {
        self.columns = columns
        self.cells = cells
        self.affectedRows = affectedRows
        self.commandTag = commandTag
        var index: [String: Int] = [:]
        for (position, column) in columns.enumerated() where index[column.name] == nil {
            index[column.name] = position
        }
        self.columnIndex = index
    }

    /// The number of rows.
    public var count: Int { columns.isEmpty ? 0 : cells.count / columns.count }

    /// The row at `index`. Reading a row the result does not have throws `rowNotFound` from
    /// `decode`, never traps: `rows[0].decode(…)` on an empty result is an error to handle.
    public subscript(index: Int) -> PostgresRow { PostgresRow(rows: self, index: index) }

    /// The first row, if any.
    public var first: PostgresRow? { count > 0 ? self[0] : nil }

    /// Iterates the rows in order.
    public func makeIterator() -> AnyIterator<PostgresRow> {
        var next = 0
        return AnyIterator {
            guard next < self.count else { return nil }
            defer { next += 1 }
            return self[next]
        }
    }
}

/// One row of ``PostgresRows``, decoded by column name or position.
public struct PostgresRow: Sendable {
    let rows: PostgresRows
    let index: Int

    /// Decodes the column named `name` as `T`. Throws `columnNotFound`, `unexpectedNull` or
    /// `typeMismatch` with the column's name in the message.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, _ name: String) throws -> T {
        guard let position = rows.columnIndex[name] else {
            let known = rows.columns.map(\.name).joined(separator: ", ")
            throw PostgresError(
                code: .columnNotFound, message: "no column \"\(name)\" in the result (columns: \(known))",
                column: name)
        }
        return try decode(type, at: position)
    }

    /// Decodes the column at `position` (0-based) as `T`.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at position: Int) throws -> T {
        guard index >= 0, index < rows.count else {
            throw PostgresError(
                code: .rowNotFound, message: "the statement returned \(rows.count) row(s); row \(index) does not exist")
        }
        guard position >= 0, position < rows.columns.count else {
            throw PostgresError(
                code: .columnNotFound,
                message: "column index \(position) is out of range (\(rows.columns.count) columns)")
        }
        let column = rows.columns[position]
        return try T.decode(
            rows.cells[index * rows.columns.count + position], type: column.type, column: column.name)
    }

    /// Whether the named column is NULL in this row.
    public func isNull(_ name: String) -> Bool {
        guard index >= 0, index < rows.count, let position = rows.columnIndex[name] else { return true }
        return rows.cells[index * rows.columns.count + position] == nil
    }
}
