import CLibPQ
import Foundation

/// One statement with its bound parameters (`$1`, `$2`, …), held in libpq's terms: type OIDs
/// and text values. ``PostgresConnection/queries(_:)`` sends several in one round trip.
public struct PostgresStatement: Sendable {
    let sql: String
    let types: [UInt32]
    let values: [String?]

    /// A statement and the values bound to its parameters, in order.
    public init(_ sql: String, _ parameters: [any PostgresEncodable] = []) {
        self.sql = sql
        self.types = parameters.map { type(of: $0).postgresType.oid }
        self.values = parameters.map { $0.postgresText }  // a closure: see `Array.postgresText`
    }
}

/// What a session sends ahead of its next statement (see ``PostgresConnection/enqueue(_:_:)``).
struct Outgoing {
    /// A ``PostgresConnection/transaction(_:)`` is open on the session.
    var inTransaction = false
    /// Its `BEGIN` has gone out (with its first statement).
    var beginSent = false
    /// Statements queued to go out with the next one.
    var statements: [PostgresStatement] = []
    /// ``PostgresConnection/queryAndCommit(_:_:)`` sent the transaction's `COMMIT` with its
    /// last statement, and the server committed: nothing is left to send.
    var committed = false
}

/// A pipeline that could not be sent or read to its end leaves the session mid-protocol (still
/// in pipeline mode, results unread): whatever libpq says of the socket, the session is
/// reported lost, so its pool drops it instead of lending it out again.
private func pipelineBroken(_ connection: OpaquePointer) -> PostgresError {
    PostgresError(code: .connectionLost, message: "the statement pipeline broke off: \(lastErrorMessage(connection))")
}

/// Sends `statements` in one round trip (libpq pipeline mode: every statement, then one
/// Sync) and returns each one's rows, in order. Runs on the session's own thread.
///
/// The server stops at the first statement that fails and skips the rest up to the Sync;
/// that first failure is thrown once the whole pipeline has been read, so the session is idle
/// again (inside a transaction, the transaction has failed and needs its `ROLLBACK`).
/// Statements are prepared once per session here too: a `Parse` goes into the pipeline ahead
/// of the first use of a text.
func runPipeline(
    _ statements: [PostgresStatement], on connection: OpaquePointer, handle: LibPQHandle, deadline timeout: Duration?
) throws -> [PostgresRows] {
    let deadline = timeout.map { ContinuousClock.now + $0 }
    guard PQenterPipelineMode(connection) == 1 else { throw pipelineBroken(connection) }
    /// What each command in the pipeline was, to file its result.
    enum Sent {
        case prepare(PreparedKey)
        case execute(index: Int, prepared: PreparedKey?)
    }
    var sent: [Sent] = []
    for (index, statement) in statements.enumerated() {
        let key = PreparedKey(sql: statement.sql, types: statement.types)
        var name = handle.prepared[key]
        if name == nil, handle.prepared.count < PostgresConnection.preparedLimit {
            let candidate = "emporium_\(handle.statementsPrepared + 1)"
            handle.statementsPrepared += 1
            guard PQsendPrepare(connection, candidate, statement.sql, Int32(statement.types.count), statement.types) == 1 else {
                throw pipelineBroken(connection)
            }
            handle.prepared[key] = candidate
            name = candidate
            sent.append(.prepare(key))
        }
        let queued = withCStringArray(statement.values) { pointers in
            if let name {
                PQsendQueryPrepared(connection, name, Int32(statement.values.count), pointers, nil, nil, 0)
            } else {
                PQsendQueryParams(connection, statement.sql, Int32(statement.values.count), statement.types, pointers, nil, nil, 0)
            }
        }
        guard queued == 1 else { throw pipelineBroken(connection) }
        sent.append(.execute(index: index, prepared: name == nil ? nil : key))
    }
    guard PQpipelineSync(connection) == 1 else { throw pipelineBroken(connection) }
    roundTrips.increment()
    switch flushAll(connection, deadline: deadline) {
    case .sent: break
    case .timedOut: throw timeoutError(timeout)
    case .failed: throw pipelineBroken(connection)
    }

    var rows = [PostgresRows?](repeating: nil, count: statements.count)
    var firstError: PostgresError?
    // Each command's results end with a NULL from PQgetResult; the Sync ends the pipeline.
    var command = 0
    while true {
        while PQisBusy(connection) == 1 {
            guard waitForSocket(connection, events: Int32(POLLIN), deadline: deadline) else { throw timeoutError(timeout) }
            guard PQconsumeInput(connection) == 1 else { throw pipelineBroken(connection) }
        }
        guard let result = PQgetResult(connection) else {
            command += 1
            // More ends than commands: libpq and this reader disagree; the session cannot be trusted.
            guard command <= sent.count else { throw pipelineBroken(connection) }
            continue
        }
        let status = PQresultStatus(result)
        if status == PGRES_PIPELINE_SYNC {
            PQclear(result)
            break
        }
        if status == PGRES_PIPELINE_ABORTED || command >= sent.count {
            // Skipped after an earlier failure, which is the one reported.
            PQclear(result)
            continue
        }
        do {
            let read = try readResult(result, connection: connection)
            if case .execute(let index, _) = sent[command] { rows[index] = read }
        } catch let error as PostgresError {
            // A text that failed to prepare, or whose plan went stale, is prepared afresh next time.
            switch sent[command] {
            case .prepare(let key): handle.prepared[key] = nil
            case .execute(_, let key?) where error.isStaleStatement: handle.forget(key, after: error)
            case .execute: break
            }
            if firstError == nil { firstError = error }
        }
    }
    guard PQexitPipelineMode(connection) == 1 else { throw pipelineBroken(connection) }
    if let firstError { throw firstError }
    return try rows.map { row in
        guard let row else { throw pipelineBroken(connection) }
        return row
    }
}
