import CLibPQ
import Foundation
import IOThread
import Logging
import Synchronization

/// The raw libpq handle; only ever touched on the owning connection's ``IOThread``.
final class LibPQHandle: @unchecked Sendable {
    var pointer: OpaquePointer?
    /// Statements this session has prepared: SQL text and parameter types → statement name.
    var prepared: [PreparedKey: String] = [:]
    /// Numbers statement names; never reused, so a name left on the server cannot clash.
    var statementsPrepared = 0
}

/// What identifies a prepared statement: the same text with other parameter types is another.
struct PreparedKey: Hashable {
    let sql: String
    let types: [UInt32]
}

/// One PostgreSQL session.
///
/// Every libpq call runs on the connection's own thread, so a connection is used by one
/// thread at a time and never blocks Swift's cooperative pool. Values are always bound
/// parameters, never spliced into SQL text. Each statement text is prepared once per session
/// (`PQprepare`) and then executed by name (`PQexecPrepared`), so the server parses and plans
/// it once instead of on every call; past ``preparedLimit`` distinct texts, further ones are
/// sent unprepared (`PQexecParams`).
public final class PostgresConnection: Sendable {
    /// The server process id serving this session (`pg_backend_pid()`).
    public let backendPID: Int32
    private let thread: IOThread
    private let handle: LibPQHandle
    private let broken = Mutex(false)
    private let logger: Logger

    private init(thread: IOThread, handle: LibPQHandle, backendPID: Int32, logger: Logger) {
        self.thread = thread
        self.handle = handle
        self.backendPID = backendPID
        self.logger = logger
    }

    deinit {
        let handle = self.handle
        thread.submit {
            if let pointer = handle.pointer { PQfinish(pointer) }
            handle.pointer = nil
        }
        thread.shutdown()
    }

    /// Opens a session. Throws `connectionFailed` with libpq's reason (refused, timed out,
    /// authentication failed) within the configuration's connect timeout.
    public static func connect(
        configuration: PostgresConfiguration, logger: Logger = Logger(label: "emporium.postgres")
    ) async throws -> PostgresConnection {
        let thread = IOThread(name: "pg-\(configuration.database)")
        let handle = LibPQHandle()
        let parameters = configuration.connectionParameters
        let pid: Int32
        do {
            pid = try await thread.run {
                let connection = withCStringArray(parameters.map { $0.0 }) { keywords in
                    withCStringArray(parameters.map { Optional($0.1) }) { values in
                        PQconnectdbParams(keywords, values, 0)
                    }
                }
                guard let connection else {
                    throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
                }
                guard PQstatus(connection) == CONNECTION_OK else {
                    let message = lastErrorMessage(connection)
                    PQfinish(connection)
                    throw PostgresError(
                        code: .connectionFailed,
                        message: "cannot connect to PostgreSQL at \(configuration.host):\(configuration.port)"
                            + " as \(configuration.user): \(message)")
                }
                handle.pointer = connection
                return PQbackendPID(connection)
            }
        } catch {
            thread.shutdown()
            throw error
        }
        return PostgresConnection(thread: thread, handle: handle, backendPID: pid, logger: logger)
    }

    /// The most statements one session keeps prepared (bounds server and client memory when
    /// statement texts are built at run time).
    public static let preparedLimit = 256

    /// Runs one statement with bound parameters (`$1`, `$2`, …) and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresRows {
        let types = parameters.map { type(of: $0).postgresType.oid }
        let values = parameters.map(\.postgresText)
        return try await perform { [handle] connection in
            let key = PreparedKey(sql: sql, types: types)
            var name = handle.prepared[key]
            if name == nil, handle.prepared.count < Self.preparedLimit {
                let candidate = "emporium_\(handle.statementsPrepared + 1)"
                handle.statementsPrepared += 1
                _ = try readResult(PQprepare(connection, candidate, sql, Int32(types.count), types), connection: connection)
                handle.prepared[key] = candidate
                name = candidate
            }
            let result = withCStringArray(values) { pointers in
                if let name {
                    PQexecPrepared(connection, name, Int32(values.count), pointers, nil, nil, 0)
                } else {
                    PQexecParams(connection, sql, Int32(values.count), types, pointers, nil, nil, 0)
                }
            }
            do {
                return try readResult(result, connection: connection)
            } catch let error as PostgresError where error.sqlState == "0A000" && name != nil {
                // "cached plan must not change result type": a table changed under the prepared
                // statement. Forget it so the next call prepares it afresh; this call fails.
                handle.prepared[key] = nil
                // Inside a failed transaction this DEALLOCATE fails too; the name is never reused.
                PQclear(PQexec(connection, "DEALLOCATE \(name!)"))
                throw error
            }
        }
    }

    /// Runs a trusted, parameterless script of one or more statements (`PQexec`), as
    /// migrations need. Never pass text that contains user input.
    public func executeScript(_ sql: String) async throws {
        _ = try await perform { connection in
            try readResult(PQexec(connection, sql), connection: connection)
        }
    }

    /// Runs `body` inside `BEGIN` … `COMMIT`; rolls back and rethrows if `body` throws.
    /// A commit the server turned into a rollback (the transaction had failed) throws.
    @discardableResult
    public func transaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await query("BEGIN")
        let value: T
        do {
            value = try await body(self)
        } catch {
            do { try await query("ROLLBACK") } catch { markBrokenIfNeeded(error) }
            throw error
        }
        let commit = try await query("COMMIT")
        guard commit.commandTag == "COMMIT" else {
            throw PostgresError(
                code: .server, message: "the transaction had failed and was rolled back", sqlState: "25P02")
        }
        return value
    }

    /// Whether the session can take work: no lost socket, no open transaction. Reads any
    /// message the server sent meanwhile (such as a termination notice) without a round trip.
    public func isUsable() async -> Bool {
        guard !broken.withLock({ $0 }) else { return false }
        let usable = (try? await thread.run { [handle] in
            guard let connection = handle.pointer else { return false }
            // The server's termination notice and the EOF after it may need several reads.
            for _ in 0..<8 {
                guard PQconsumeInput(connection) == 1, PQstatus(connection) == CONNECTION_OK else { return false }
                var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
                if poll(&descriptor, 1, 0) <= 0 { break }
            }
            return PQtransactionStatus(connection) == PQTRANS_IDLE
        }) ?? false
        if !usable { broken.withLock { $0 = true } }
        return usable
    }

    /// Whether an error has shown the session to be unusable.
    public var isBroken: Bool { broken.withLock { $0 } }

    /// Closes the session and stops its thread.
    public func close() async {
        _ = try? await thread.run { [handle] in
            if let pointer = handle.pointer { PQfinish(pointer) }
            handle.pointer = nil
        }
        broken.withLock { $0 = true }
        thread.shutdown()
    }

    private func perform<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        do {
            return try await thread.run { [handle] in
                guard let connection = handle.pointer else {
                    throw PostgresError(code: .connectionLost, message: "the connection is closed")
                }
                return try body(connection)
            }
        } catch let error as IOThread.Stopped {
            broken.withLock { $0 = true }
            throw PostgresError(code: .connectionLost, message: error.description)
        } catch {
            markBrokenIfNeeded(error)
            throw error
        }
    }

    private func markBrokenIfNeeded(_ error: any Error) {
        if let error = error as? PostgresError, error.code == .connectionLost || error.sqlState?.hasPrefix("57P") == true {
            broken.withLock { $0 = true }
            logger.warning("postgres connection lost", metadata: ["db.backend_pid": "\(backendPID)", "error": "\(error.message)"])
        }
    }
}

// MARK: - libpq helpers (run on the owning thread)

/// libpq's last error message for `connection`, without the trailing newline.
private func lastErrorMessage(_ connection: OpaquePointer) -> String {
    String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Turns a `PGresult` into rows or a ``PostgresError`` (the one place libpq statuses become
/// Swift errors), and frees it.
private func readResult(_ result: OpaquePointer?, connection: OpaquePointer) throws -> PostgresRows {
    guard let result else {
        let lost = PQstatus(connection) != CONNECTION_OK
        throw PostgresError(code: lost ? .connectionLost : .server, message: lastErrorMessage(connection))
    }
    defer { PQclear(result) }
    switch PQresultStatus(result) {
    case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
        break
    default:
        func field(_ code: UInt8) -> String? {
            PQresultErrorField(result, Int32(code)).map { String(cString: $0) }
        }
        let sqlState = field(UInt8(ascii: "C"))
        let lost = PQstatus(connection) != CONNECTION_OK
        throw PostgresError(
            code: lost && (sqlState == nil || sqlState!.hasPrefix("57P") || sqlState!.hasPrefix("08")) ? .connectionLost : .server,
            message: field(UInt8(ascii: "M")) ?? lastErrorMessage(connection),
            sqlState: sqlState,
            detail: field(UInt8(ascii: "D")),
            hint: field(UInt8(ascii: "H")),
            constraint: field(UInt8(ascii: "n")),
            table: field(UInt8(ascii: "t")),
            column: field(UInt8(ascii: "c")))
    }
    let rowCount = Int(PQntuples(result))
    let columnCount = Int(PQnfields(result))
    var columns: [PostgresRows.Column] = []
    columns.reserveCapacity(columnCount)
    for column in 0..<columnCount {
        columns.append(
            .init(name: String(cString: PQfname(result, Int32(column))), type: PostgresType(oid: PQftype(result, Int32(column)))))
    }
    var cells: [String?] = []
    cells.reserveCapacity(rowCount * columnCount)
    for row in 0..<Int32(rowCount) {
        for column in 0..<Int32(columnCount) {
            if PQgetisnull(result, row, column) == 1 {
                cells.append(nil)
            } else {
                cells.append(String(cString: PQgetvalue(result, row, column)))
            }
        }
    }
    let tag = String(cString: PQcmdStatus(result))
    let affected = Int(String(cString: PQcmdTuples(result))) ?? rowCount
    return PostgresRows(columns: columns, cells: cells, affectedRows: affected, commandTag: tag)
}

/// Calls `body` with a C array of C strings (NULL entries stay NULL), valid only inside it.
private func withCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let duplicated = strings.map { $0.flatMap { strdup($0) } }
    defer { duplicated.forEach { free($0) } }
    return body(duplicated.map { $0.map { UnsafePointer($0) } } + [nil])
}
