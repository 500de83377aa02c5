/// An error from the PostgreSQL client or server.
///
/// A struct with a ``Code`` and context rather than a public enum, so new cases do not break
/// callers. Server errors carry the SQLSTATE and the fields PostgreSQL reports with it.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable name, e.g. `server` or `connectionFailed`.
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// `DATABASE_URL` or another configuration value could not be understood.
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A connection could not be opened (refused, timed out, authentication failed).
        public static let connectionFailed = Code("connectionFailed")
        /// An open connection broke (server restart, `pg_terminate_backend`, network).
        public static let connectionLost = Code("connectionLost")
        /// The server rejected a statement; see ``PostgresError/sqlState``.
        public static let server = Code("server")
        /// A value could not be decoded as the requested Swift type.
        public static let typeMismatch = Code("typeMismatch")
        /// A row has no column with the requested name.
        public static let columnNotFound = Code("columnNotFound")
        /// A NULL was decoded into a non-optional type.
        public static let unexpectedNull = Code("unexpectedNull")
        /// No pooled connection became free within the acquire timeout.
        public static let poolTimeout = Code("poolTimeout")
        /// The pool was shut down.
        public static let poolClosed = Code("poolClosed")
        /// The server did not answer within the client-side deadline (connect or statement
        /// timeout): a hung host, a partition, a frozen process. The session was dropped.
        public static let timeout = Code("timeout")
        /// A row was read that the statement did not return (an empty result where one row
        /// was expected).
        public static let rowNotFound = Code("rowNotFound")
    }

    /// What kind of failure this is.
    public var code: Code
    /// A human-readable message (the server's primary message for server errors).
    public var message: String
    /// The five-character SQLSTATE, for server errors (e.g. `23505`).
    public var sqlState: String?
    /// The server's DETAIL field.
    public var detail: String?
    /// The server's HINT field.
    public var hint: String?
    /// The violated constraint's name, for integrity errors.
    public var constraint: String?
    /// The table involved, when the server names one.
    public var table: String?
    /// The column involved, when the server or the decoder names one.
    public var column: String?

    /// Creates an error; usually thrown by this module rather than by callers.
    public init(
        code: Code, message: String, sqlState: String? = nil, detail: String? = nil,
        hint: String? = nil, constraint: String? = nil, table: String? = nil, column: String? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.constraint = constraint
        self.table = table
        self.column = column
    }

    public var description: String {
        var text = "PostgresError(\(code)"
        if let sqlState { text += " \(sqlState)" }
        text += "): \(message)"
        if let detail { text += " DETAIL: \(detail)" }
        if let constraint { text += " [constraint \(constraint)]" }
        return text
    }

    /// Whether trying again later may succeed: lost or refused connections, serialization
    /// failures, deadlocks, a server shutting down or out of connections, cancelled
    /// statements (e.g. the statement timeout), pool timeouts and a pool closed by shutdown
    /// (another process may do the work).
    public var isTransient: Bool {
        if isUnavailable || isStaleStatement { return true }
        switch code {
        case .poolClosed: return true
        case .server:
            guard let sqlState else { return false }
            return sqlState.hasPrefix("08")  // connection exception
                || sqlState == "40001"  // serialization_failure
                || sqlState == "40P01"  // deadlock_detected
                || sqlState == "55P03"  // lock_not_available
                || sqlState == "57014"  // query_canceled (statement timeout)
                || sqlState.hasPrefix("57P")  // admin/crash shutdown, cannot connect now
                || sqlState == "53300"  // too_many_connections
        default: return false
        }
    }

    /// Whether the database itself cannot serve right now, whatever the statement: it cannot
    /// be reached, refuses connections, is shutting down or starting, does not answer within
    /// the deadline, has no free connection, or is a read-only standby after a failover.
    /// Such a failure is the infrastructure's, not the work's: a worker pauses and waits for
    /// the database instead of spending the message's retry attempts.
    public var isUnavailable: Bool {
        switch code {
        case .connectionFailed, .connectionLost, .poolTimeout, .timeout: return true
        case .server:
            guard let sqlState else { return false }
            return sqlState.hasPrefix("08")  // connection exception
                || sqlState.hasPrefix("57P")  // admin/crash shutdown, cannot connect now
                || sqlState == "53300"  // too_many_connections
                || sqlState == "25006"  // read_only_sql_transaction: a standby after failover
        default: return false
        }
    }

    /// Whether a prepared statement went stale under the session: `0A000` ("cached plan must
    /// not change result type", after a migration altered a table) or `26000` (the statement
    /// does not exist, e.g. behind a pooler). The statement is prepared afresh and retried.
    public var isStaleStatement: Bool {
        code == .server && (sqlState == "26000" || (sqlState == "0A000" && message.contains("cached plan")))
    }

    /// SQLSTATE 23505: a unique constraint was violated.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// Whether a foreign key refused the statement (a reference to a missing row, or a row
    /// still referenced).
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
}
