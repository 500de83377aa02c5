import CLibPQ
import Foundation
import IOThread
import Logging
import Metrics
import Synchronization
import Units

/// The raw libpq handle; only ever touched on the owning connection's ``IOThread``.
final class LibPQHandle: @unchecked Sendable {
    var pointer: OpaquePointer?
    /// Statements this session has prepared: SQL text and parameter types → statement name.
    var prepared: [PreparedKey: String] = [:]
    /// Numbers statement names; never reused, so a name left on the server cannot clash.
    var statementsPrepared = 0
    /// Set when the server announced, between statements, that it is ending the session
    /// (`FATAL`, as `pg_terminate_backend` or a shutdown sends it). Its socket may not show
    /// the close yet, so this is what tells a pool not to hand the session out.
    var serverEnded = false

    /// Forgets a statement the server refused as stale, so its next use prepares it afresh.
    /// `26000` (it does not exist) means the server has lost the session's statements
    /// (`DEALLOCATE ALL`, or a pooler moved the session): all of them are forgotten, or a
    /// retried transaction would trip on the next one.
    func forget(_ key: PreparedKey, after error: PostgresError) {
        if error.sqlState == "26000" { prepared.removeAll() } else { prepared[key] = nil }
    }
}

/// libpq hands an error that arrives while the session is idle to the notice receiver; a
/// `FATAL` or `PANIC` one means the server process is going away. Other notices (such as
/// `CREATE … IF NOT EXISTS` skipping) are ignored rather than printed to standard error,
/// where they would break the JSON log lines.
private let noticeReceiver: PQnoticeReceiver = { argument, result in
    guard let argument, let result, let severity = PQresultErrorField(result, Int32(UInt8(ascii: "V"))) else { return }
    let level = String(cString: severity)
    if level == "FATAL" || level == "PANIC" {
        Unmanaged<LibPQHandle>.fromOpaque(argument).takeUnretainedValue().serverEnded = true
    }
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
///
/// Every wait on the server has a deadline. Connecting is bounded by the configuration's
/// connect timeout (libpq's asynchronous connect, polled with millisecond precision), and
/// each statement by its query timeout: a server that stops answering (a hung host, a
/// network partition, `SIGSTOP`) yields ``PostgresError/Code/timeout`` instead of a hang.
/// The statement is then cancelled on the server (`PQcancel`, from a thread of its own, since
/// a frozen server may not answer the cancel either) and the session is dropped, so its pool
/// opens a fresh one.
public final class PostgresConnection: Sendable {
    /// The server process id serving this session (`pg_backend_pid()`).
    public let backendPID: Int32
    /// The session's own thread as a task executor: code that prefers it
    /// (``PostgresPool/withConnection(_:)`` does, for its body) runs where the libpq calls
    /// run, so each statement is no thread switch away.
    public var executor: any TaskExecutor { thread }
    /// Whether the caller runs on this session's thread, as the body of
    /// ``PostgresPool/withConnection(_:)`` does.
    public var isOnItsThread: Bool { thread.isCurrent }
    private let thread: IOThread
    private let handle: LibPQHandle
    private let broken = Mutex(false)
    /// What goes out ahead of the next statement, in the same round trip: the open
    /// transaction's `BEGIN` until it is sent, and the statements queued with ``enqueue(_:_:)``.
    private let outgoing = Mutex(Outgoing())
    private let logger: Logger
    /// The client-side deadline of each statement; nil waits as long as the server takes.
    private let queryTimeout: Duration?

    private init(thread: IOThread, handle: LibPQHandle, backendPID: Int32, queryTimeout: Duration?, logger: Logger) {
        self.thread = thread
        self.handle = handle
        self.backendPID = backendPID
        self.queryTimeout = queryTimeout
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

    /// Opens a session. Throws `connectionFailed` with libpq's reason (refused,
    /// authentication failed) or `timeout` when the server does not complete the handshake
    /// within `timeout` (default: the configuration's connect timeout).
    public static func connect(
        configuration: PostgresConfiguration, timeout: Duration? = nil, logger: Logger = Logger(label: "emporium.postgres")
    ) async throws -> PostgresConnection {
        let thread = IOThread(name: "pg-\(configuration.database)")
        let handle = LibPQHandle()
        let parameters = configuration.connectionParameters
        let budget = timeout ?? configuration.connectTimeout
        let pid: Int32
        do {
            pid = try await thread.run {
                let connection = try openNonBlocking(parameters, within: budget, configuration: configuration)
                handle.pointer = connection
                // The handle outlives every libpq call on `connection` (it owns the pointer).
                PQsetNoticeReceiver(connection, noticeReceiver, Unmanaged.passUnretained(handle).toOpaque())
                return PQbackendPID(connection)
            }
        } catch {
            thread.shutdown()
            throw error
        }
        return PostgresConnection(thread: thread, handle: handle, backendPID: pid, queryTimeout: configuration.queryTimeout, logger: logger)
    }

    /// The most statements one session keeps prepared (bounds server and client memory when
    /// statement texts are built at run time).
    public static let preparedLimit = 256

    /// Runs one statement with bound parameters (`$1`, `$2`, …) and returns its rows.
    ///
    /// A prepared statement the server no longer accepts (`0A000` "cached plan must not
    /// change result type" after a migration altered a table, `26000` "prepared statement
    /// does not exist" behind a pooler) is forgotten and, outside a transaction, prepared
    /// again and run once more; inside one the error says so (``PostgresError/isStaleStatement``)
    /// and ``transaction(_:)`` runs the whole transaction again.
    ///
    /// Statements waiting to go out (a transaction's `BEGIN`, writes queued with
    /// ``enqueue(_:_:)``) are sent with this one in a single round trip; the first of them
    /// that fails is what this call throws.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresRows {
        let statement = PostgresStatement(sql, parameters)
        let ahead = try takeOutgoing()
        let deadline = queryTimeout
        guard ahead.isEmpty else {
            return try await perform { [handle] connection in
                try runPipeline(ahead + [statement], on: connection, handle: handle, deadline: deadline).last!
            }
        }
        let (types, values) = (statement.types, statement.values)
        return try await perform { [handle] connection in
            let key = PreparedKey(sql: sql, types: types)
            for attempt in 0..<2 {
                var name = handle.prepared[key]
                if name == nil, handle.prepared.count < Self.preparedLimit {
                    let candidate = "emporium_\(handle.statementsPrepared + 1)"
                    handle.statementsPrepared += 1
                    _ = try execute(connection, deadline: deadline) {
                        PQsendPrepare(connection, candidate, sql, Int32(types.count), types)
                    }
                    handle.prepared[key] = candidate
                    name = candidate
                }
                do {
                    return try execute(connection, deadline: deadline) {
                        withCStringArray(values) { pointers in
                            if let name {
                                PQsendQueryPrepared(connection, name, Int32(values.count), pointers, nil, nil, 0)
                            } else {
                                PQsendQueryParams(connection, sql, Int32(values.count), types, pointers, nil, nil, 0)
                            }
                        }
                    }
                } catch let error as PostgresError where error.isStaleStatement && name != nil {
                    // Forget it so the next use prepares it afresh.
                    handle.forget(key, after: error)
                    let inTransaction = PQtransactionStatus(connection) != PQTRANS_IDLE
                    if error.sqlState == "0A000", !inTransaction, let name {
                        // The statement still exists on the server; free it (the name is never reused).
                        _ = try? execute(connection, deadline: deadline) { PQsendQuery(connection, "DEALLOCATE \(name)") }
                    }
                    // Outside a transaction nothing was lost: run it again at once. Inside
                    // one the transaction has failed; the caller's transaction() retries it.
                    guard !inTransaction, attempt == 0 else { throw error }
                }
            }
            throw PostgresError(code: .server, message: "a prepared statement went stale twice in a row", sqlState: "0A000")
        }
    }

    /// Runs a trusted, parameterless script of one or more statements, as migrations need.
    /// Never pass text that contains user input. Scripts wait as long as the server takes
    /// (a migration may legitimately wait for locks); only the server's statement timeout
    /// bounds them.
    public func executeScript(_ sql: String) async throws {
        // A script goes by the simple protocol, which a pipeline cannot carry: what waits goes first.
        let ahead = try takeOutgoing()
        let deadline = queryTimeout
        if !ahead.isEmpty {
            _ = try await perform { [handle] connection in try runPipeline(ahead, on: connection, handle: handle, deadline: deadline) }
        }
        _ = try await perform { connection in
            try execute(connection, deadline: nil) { PQsendQuery(connection, sql) }
        }
    }

    /// Runs `body` inside `BEGIN` … `COMMIT`; rolls back and rethrows if `body` throws.
    /// A commit the server turned into a rollback (the transaction had failed) throws.
    ///
    /// A transaction that failed only because one of its prepared statements went stale (a
    /// migration changed a table under it) runs once more from the start, so `body` must be
    /// safe to run again: its effects outside this session (a provider call) must be
    /// idempotent, as everything in Emporium's transactions is.
    @discardableResult
    public func transaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await transactionOnce(body)
            } catch let error as PostgresError where error.isStaleStatement && attempt == 1 {
                logger.info(
                    "a prepared statement went stale (the schema changed); running the transaction again",
                    metadata: ["db.sqlstate": "\(error.sqlState ?? "-")"])
            }
        }
    }

    /// `BEGIN` is not a round trip of its own: it goes out with the transaction's first
    /// statement (and a transaction that ran no statement sends nothing at all).
    private func transactionOnce<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        outgoing.withLock { $0 = Outgoing(inTransaction: true) }
        defer { outgoing.withLock { $0 = Outgoing() } }
        let value: T
        do {
            value = try await body(self)
        } catch {
            await rollBack()
            throw error
        }
        let (nothingSent, committed) = outgoing.withLock { (!$0.beginSent && $0.statements.isEmpty, $0.committed) }
        if nothingSent || committed { return value }
        let commit: PostgresRows
        do {
            commit = try await query("COMMIT")
        } catch {
            // A queued statement sent with the COMMIT failed: the transaction is still open
            // (aborted) on the server. After a failed COMMIT itself this is a no-op.
            await rollBack()
            throw error
        }
        guard commit.commandTag == "COMMIT" else {
            throw PostgresError(
                code: .server, message: "the transaction had failed and was rolled back", sqlState: "25P02")
        }
        return value
    }

    /// Runs `statements` in one round trip (libpq pipeline mode), after whatever waits to go
    /// out (the transaction's `BEGIN`, queued writes), and returns each one's rows, in order.
    /// For reads that do not depend on each other's answers, such as a placement's look-ups.
    /// The first statement that fails is what this throws; the server skips the rest, so
    /// inside a transaction the transaction has failed.
    public func queries(_ statements: [PostgresStatement]) async throws -> [PostgresRows] {
        guard !statements.isEmpty else { return [] }
        let ahead = try takeOutgoing()
        let deadline = queryTimeout
        return try await perform { [handle] connection in
            Array(try runPipeline(ahead + statements, on: connection, handle: handle, deadline: deadline).suffix(statements.count))
        }
    }

    /// Runs the open transaction's last statement and its `COMMIT` in one round trip, after
    /// whatever waits to go out, and returns that statement's rows: a transaction whose last
    /// statement returns something (a stored response) needs no round trip of its own for the
    /// commit. Nothing may run in the transaction after it. Throws when called outside
    /// ``transaction(_:)``, when any statement fails, or when the server rolled back instead
    /// of committing.
    public func queryAndCommit(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws -> PostgresRows {
        guard outgoing.withLock({ $0.inTransaction }) else {
            throw PostgresError(code: .server, message: "queryAndCommit needs an open transaction", sqlState: "25000")
        }
        let ahead = try takeOutgoing()
        let deadline = queryTimeout
        let results = try await perform { [handle] connection in
            try runPipeline(ahead + [PostgresStatement(sql, parameters), PostgresStatement("COMMIT")], on: connection, handle: handle, deadline: deadline)
        }
        guard results[results.count - 1].commandTag == "COMMIT" else {
            throw PostgresError(code: .server, message: "the transaction had failed and was rolled back", sqlState: "25P02")
        }
        outgoing.withLock { $0.committed = true }
        return results[results.count - 2]
    }

    /// Queues a statement whose rows nobody reads (an `INSERT` or `UPDATE` without
    /// `RETURNING`) to go out with the next ``query(_:_:)`` or the transaction's `COMMIT`, in
    /// the same round trip (libpq pipeline mode). Inside ``transaction(_:)`` it saves a round
    /// trip; its failure is thrown by that later call and fails the whole transaction, so
    /// queue only statements whose errors need no handling of their own. Outside a
    /// transaction it runs at once.
    public func enqueue(_ sql: String, _ parameters: [any PostgresEncodable] = []) async throws {
        let statement = PostgresStatement(sql, parameters)
        let queued = try outgoing.withLock { state -> Bool in
            guard state.inTransaction else { return false }
            guard !state.committed else { throw Self.afterCommit }
            state.statements.append(statement)
            return true
        }
        if !queued { try await query(sql, parameters) }
    }

    /// Makes the rest of the open transaction run each statement on the plan its session made
    /// once for it (`SET LOCAL plan_cache_mode = force_generic_plan`), queued like
    /// ``enqueue(_:_:)`` so it costs no round trip of its own; outside a transaction it does
    /// nothing. PostgreSQL otherwise plans a statement that takes an array afresh on every
    /// call, because its plan for the array at hand always looks cheaper than the general one,
    /// and for a worker's batch statements that planning cost about as much as running them
    /// (BENCHMARKS.md, "2026-12-06 (night)"). Only for transactions whose every statement
    /// has a good general plan whatever its parameters; the setting ends with the transaction.
    public func preferGenericPlans() throws {
        try outgoing.withLock { state in
            guard state.inTransaction else { return }
            guard !state.committed else { throw Self.afterCommit }
            state.statements.append(PostgresStatement("SET LOCAL plan_cache_mode = force_generic_plan", []))
        }
    }

    /// A statement sent in a transaction that ``queryAndCommit(_:_:)`` already committed.
    private static let afterCommit = PostgresError(
        code: .server, message: "a statement after queryAndCommit: the transaction is already committed", sqlState: "25000")

    /// Discards what is queued and ends the open transaction, if one reached the server.
    private func rollBack() async {
        let begun = outgoing.withLock { state -> Bool in
            state.statements = []
            // Whatever happened, the ROLLBACK below must go out (after a committed
            // transaction it is a harmless no-op; it is only sent when the body threw).
            state.committed = false
            return state.beginSent
        }
        guard begun else { return }
        do { try await query("ROLLBACK") } catch { markBrokenIfNeeded(error) }
    }

    /// Takes what must go out ahead of the next statement: `BEGIN` first if the open
    /// transaction has not sent it yet, then the queued statements.
    private func takeOutgoing() throws -> [PostgresStatement] {
        try outgoing.withLock { state in
            // After queryAndCommit the session is outside any transaction: a statement now
            // would run on its own, not in the transaction its caller thinks it is in.
            guard !state.committed else { throw Self.afterCommit }
            var ahead: [PostgresStatement] = []
            if state.inTransaction && !state.beginSent {
                ahead.append(PostgresStatement("BEGIN", []))
                state.beginSent = true
            }
            ahead += state.statements
            state.statements = []
            return ahead
        }
    }

    /// Whether the session can take work: no lost socket, no open transaction. Reads any
    /// message the server sent meanwhile (such as a termination notice) without a round trip.
    public func isUsable() async -> Bool {
        guard !broken.withLock({ $0 }) else { return false }
        let usable =
            (try? await thread.run { [handle] in
                guard let connection = handle.pointer else { return false }
                // The server's termination notice and the EOF after it may need several reads.
                for _ in 0..<8 {
                    guard PQconsumeInput(connection) == 1, PQstatus(connection) == CONNECTION_OK else { return false }
                    // Parses what was read (PQconsumeInput only buffers it), so an idle-time
                    // error reaches the notice receiver.
                    _ = PQisBusy(connection)
                    var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
                    if poll(&descriptor, 1, 0) <= 0 { break }
                }
                return !handle.serverEnded && PQtransactionStatus(connection) == PQTRANS_IDLE
            }) ?? false
        if !usable { broken.withLock { $0 = true } }
        return usable
    }

    /// Whether an error has shown the session to be unusable.
    public var isBroken: Bool { broken.withLock { $0 } }

    /// Closes the session and stops its thread. Does not wait for the thread when the
    /// session is broken (its thread may still be finishing a cancelled call).
    public func close() async {
        let handle = self.handle
        let finish: @Sendable () -> Void = {
            if let pointer = handle.pointer { PQfinish(pointer) }
            handle.pointer = nil
        }
        if isBroken {
            thread.submit(finish)
        } else {
            _ = try? await thread.run(finish)
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
                do {
                    return try body(connection)
                } catch let error as PostgresError where error.code == .timeout {
                    // The server did not answer in time: cancel the statement there (from a
                    // thread of its own: a frozen server answers the cancel no sooner) and
                    // drop the session, so nothing waits on it again.
                    if let cancel = PQgetCancel(connection) {
                        let request = CancelRequest(cancel)
                        Thread.detachNewThread { request.send() }
                    }
                    PQfinish(connection)
                    handle.pointer = nil
                    throw error
                }
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
        if let error = error as? PostgresError,
            error.code == .connectionLost || error.code == .timeout || error.sqlState?.hasPrefix("57P") == true
        {
            broken.withLock { $0 = true }
            logger.warning("postgres connection lost", metadata: ["db.backend_pid": "\(backendPID)", "error": "\(error.message)"])
        }
    }
}

/// A `PGcancel` handed to a helper thread; libpq allows using it from any thread.
private final class CancelRequest: @unchecked Sendable {
    let cancel: OpaquePointer
    init(_ cancel: OpaquePointer) { self.cancel = cancel }
    func send() {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancel, &buffer, Int32(buffer.count))
        PQfreeCancel(cancel)
    }
}

// MARK: - libpq helpers (run on the owning thread)

/// libpq's last error message for `connection`, without the trailing newline.
func lastErrorMessage(_ connection: OpaquePointer) -> String {
    String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Milliseconds left until `deadline` (at least 0), or -1 (wait forever) without one.
func pollTimeout(_ deadline: ContinuousClock.Instant?) -> Int32 {
    guard let deadline else { return -1 }
    let left = deadline - ContinuousClock.now
    guard left > .zero else { return 0 }
    let ms = left.wholeMilliseconds
    return Int32(clamping: max(ms, 1))
}

/// Waits until the socket is readable (or writable) or the deadline passes; false on timeout.
func waitForSocket(_ connection: OpaquePointer, events: Int32, deadline: ContinuousClock.Instant?) -> Bool {
    while true {
        let timeout = pollTimeout(deadline)
        if timeout == 0 { return false }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(events), revents: 0)
        let ready = poll(&descriptor, 1, timeout)
        if ready > 0 { return true }
        if ready == 0 { return false }
        if errno != EINTR { return true }  // let libpq report the socket's error
    }
}

/// Opens a session with libpq's non-blocking connect, polling each step against one
/// deadline (libpq's own `connect_timeout` has whole-second resolution and covers each host
/// attempt separately).
private func openNonBlocking(_ parameters: [(String, String)], within budget: Duration, configuration: PostgresConfiguration) throws -> OpaquePointer {
    let deadline = ContinuousClock.now + budget
    let connection = withCStringArray(parameters.map { $0.0 }) { keywords in
        withCStringArray(parameters.map { Optional($0.1) }) { values in
            PQconnectStartParams(keywords, values, 0)
        }
    }
    guard let connection else {
        throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection")
    }
    let address =
        configuration.usesUnixSocket
        ? "the socket \(configuration.host)/.s.PGSQL.\(configuration.port)" : "\(configuration.host):\(configuration.port)"
    let target = "PostgreSQL at \(address) as \(configuration.user)"
    func fail(_ code: PostgresError.Code, _ reason: String) -> PostgresError {
        PQfinish(connection)
        return PostgresError(code: code, message: "cannot connect to \(target): \(reason)")
    }
    guard PQstatus(connection) != CONNECTION_BAD else { throw fail(.connectionFailed, lastErrorMessage(connection)) }
    var status = PGRES_POLLING_WRITING
    while true {
        switch status {
        case PGRES_POLLING_OK:
            // Statements are sent without blocking, so a frozen server cannot stall a send.
            guard PQsetnonblocking(connection, 1) == 0 else { throw fail(.connectionFailed, lastErrorMessage(connection)) }
            return connection
        case PGRES_POLLING_FAILED:
            throw fail(.connectionFailed, lastErrorMessage(connection))
        case PGRES_POLLING_READING:
            guard waitForSocket(connection, events: Int32(POLLIN), deadline: deadline) else {
                throw fail(.timeout, "no answer within \(budget)")
            }
        default:
            guard waitForSocket(connection, events: Int32(POLLOUT), deadline: deadline) else {
                throw fail(.timeout, "no answer within \(budget)")
            }
        }
        status = PQconnectPoll(connection)
    }
}

/// `postgres_round_trips_total`: each time a session sends to the server and waits for its
/// answer (one statement, a `Parse`, or a whole pipeline), counted by this process. The bench
/// reads it to show how many round trips an order costs, which the server's statistics cannot
/// (pipelined `BEGIN` and `COMMIT` are not in pg_stat_statements). Made once, after the
/// process bootstrapped its metrics (globals are initialised on first use).
let roundTrips = Counter(label: "postgres_round_trips_total")

/// Sends one command with `send` (a `PQsend…` call), waits for its results against the
/// deadline and returns the last one as rows, or throws the first error. On a timeout the
/// caller cancels and drops the session.
private func execute(_ connection: OpaquePointer, deadline timeout: Duration?, _ send: () -> Int32) throws -> PostgresRows {
    let deadline = timeout.map { ContinuousClock.now + $0 }
    roundTrips.increment()
    func lost() -> PostgresError { lostError(connection) }
    func timedOut() -> PostgresError { timeoutError(timeout) }
    guard send() == 1 else { throw lost() }
    switch flushAll(connection, deadline: deadline) {
    case .sent: break
    case .timedOut: throw timedOut()
    case .failed: throw lost()
    }
    var last: PostgresRows?
    var firstError: PostgresError?
    while true {
        while PQisBusy(connection) == 1 {
            guard waitForSocket(connection, events: Int32(POLLIN), deadline: deadline) else { throw timedOut() }
            guard PQconsumeInput(connection) == 1 else { throw lost() }
        }
        guard let result = PQgetResult(connection) else { break }
        do {
            last = try readResult(result, connection: connection)
        } catch let error as PostgresError {
            if firstError == nil { firstError = error }
        }
    }
    if let firstError { throw firstError }
    guard let last else { throw lost() }
    return last
}

/// libpq's failure to send or read, as an error: the session is lost unless libpq still
/// calls it healthy.
func lostError(_ connection: OpaquePointer) -> PostgresError {
    PostgresError(code: PQstatus(connection) == CONNECTION_OK ? .server : .connectionLost, message: lastErrorMessage(connection))
}

/// A statement's deadline passed; the caller cancels it and drops the session.
func timeoutError(_ timeout: Duration?) -> PostgresError {
    PostgresError(code: .timeout, message: "PostgreSQL did not answer within \(timeout ?? .zero); the statement was cancelled and the session dropped")
}

/// How pushing a command out to the server ended.
enum FlushOutcome { case sent, timedOut, failed }

/// Pushes what libpq holds out to the server: a non-blocking session may keep part of a
/// command until the socket drains (reading meanwhile, so a server that answers early cannot
/// deadlock the two).
func flushAll(_ connection: OpaquePointer, deadline: ContinuousClock.Instant?) -> FlushOutcome {
    while true {
        let flushed = PQflush(connection)
        if flushed == 0 { return .sent }
        guard flushed == 1 else { return .failed }
        guard waitForSocket(connection, events: Int32(POLLIN | POLLOUT), deadline: deadline) else { return .timedOut }
        guard PQconsumeInput(connection) == 1 else { return .failed }
    }
}

/// Turns a `PGresult` into rows or a ``PostgresError`` (the one place libpq statuses become
/// Swift errors), and frees it.
func readResult(_ result: OpaquePointer, connection: OpaquePointer) throws -> PostgresRows {
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
func withCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let duplicated = strings.map { $0.flatMap { strdup($0) } }
    defer { for pointer in duplicated { free(pointer) } }
    return body(duplicated.map { $0.map { UnsafePointer($0) } } + [nil])
}

// MARK: - Small statements every store and health check needs

extension PostgresConnection {
    /// Takes the transaction-level advisory lock named `key` if it is free; true when taken.
    /// It is released at the end of the transaction.
    public func tryAdvisoryTransactionLock(_ key: String) async throws -> Bool {
        try await query("SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked", [key])[0].decode(Bool.self, "locked")
    }

    /// Waits for the transaction-level advisory lock named `key`.
    public func advisoryTransactionLock(_ key: String) async throws {
        try await query("SELECT pg_advisory_xact_lock(hashtext($1))", [key])
    }

    /// Takes the session-level advisory lock named `key` if it is free; true when taken.
    public func tryAdvisoryLock(_ key: String) async throws -> Bool {
        try await query("SELECT pg_try_advisory_lock(hashtext($1)) AS locked", [key])[0].decode(Bool.self, "locked")
    }

    /// Releases the session-level advisory lock named `key`.
    public func advisoryUnlock(_ key: String) async throws {
        try await query("SELECT pg_advisory_unlock(hashtext($1))", [key])
    }
}

extension PostgresPool {
    /// One round trip on a pooled session (`SELECT 1`): whether the database answers.
    public func ping() async throws {
        try await query("SELECT 1")
    }
}
