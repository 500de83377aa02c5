import Foundation
import Postgres
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Deadlines on every wait for the server, and statements that go stale under a session.
@Suite("Postgres deadlines and stale statements", .timeLimit(.minutes(2)))
struct DeadlineTests {
    @Test("a statement the server does not answer within the query timeout fails with timeout, is cancelled on the server, and the pool opens a fresh session")
    func queryTimeout() async throws {
        try await TestEnvironment.withTemporaryDatabase { base in
            var config = base
            config.statementTimeout = nil  // only the client-side deadline applies
            config.queryTimeout = .milliseconds(500)
            let pool = PostgresPool(configuration: config, maxConnections: 1)
            let before = try await pool.withConnection { $0.backendPID }
            let started = ContinuousClock.now
            let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT pg_sleep(30)") }
            let elapsed = ContinuousClock.now - started
            #expect(error?.code == .timeout)
            #expect(error?.isUnavailable == true)
            // The statement sleeps 30 s: well below that means the deadline, not the server, ended it.
            #expect(elapsed < .seconds(15), "the deadline held: \(elapsed)")
            // The server stops working on it: the cancel reached the backend.
            let observer = try await PostgresConnection.connect(configuration: base)
            let cancelled = await TestEnvironment.eventually(timeout: .seconds(10)) {
                (try? await observer.query("SELECT count(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"))?
                    .first.map { (try? $0.decode(Int.self, "n")) == 0 } ?? false
            }
            #expect(cancelled, "the timed-out statement is still running on the server")
            // The next caller gets a new, working session.
            let after = try await pool.withConnection { db -> Int32 in
                try await db.query("SELECT 1")
                return db.backendPID
            }
            #expect(after != before)
            await observer.close()
            await pool.close()
        }
    }

    @Test("connecting to a server that accepts but never answers fails with timeout within the connect timeout")
    func connectTimeout() async throws {
        // A socket that listens (the kernel completes the TCP handshake) but never speaks:
        // what a frozen database host looks like.
        let (fd, port) = try TestEnvironment.bindLoopback(listening: true)
        defer { close(fd) }
        var config = try TestEnvironment.postgres()
        config.host = "127.0.0.1"
        config.port = port
        config.connectTimeout = .milliseconds(700)
        let started = ContinuousClock.now
        let error = await #expect(throws: PostgresError.self) { _ = try await PostgresConnection.connect(configuration: config) }
        #expect(error?.code == .timeout)
        // Without the deadline this waits forever; the bound leaves room for a loaded machine.
        #expect(ContinuousClock.now - started < .seconds(10))

        // A pool's acquire timeout bounds waiting and connecting together.
        let pool = PostgresPool(configuration: config, maxConnections: 1, acquireTimeout: .milliseconds(400))
        let poolStarted = ContinuousClock.now
        await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(ContinuousClock.now - poolStarted < .seconds(10))
        await pool.close()
    }

    @Test("a prepared statement made stale by ALTER TABLE is prepared afresh, outside a transaction and inside one")
    func staleStatements() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let db = try await PostgresConnection.connect(configuration: config)
            let admin = try await PostgresConnection.connect(configuration: config)
            try await db.query("CREATE TABLE hot (id int4 PRIMARY KEY, amount int4 NOT NULL)")
            try await db.query("INSERT INTO hot VALUES (1, 10)")
            let read = "SELECT amount FROM hot WHERE id = $1"
            #expect(try await db.query(read, [1])[0].decode(Int.self, "amount") == 10)

            // The result type changes under the prepared statement: 0A000, then a fresh prepare.
            try await admin.query("ALTER TABLE hot ALTER COLUMN amount TYPE int8")
            #expect(try await db.query(read, [1])[0].decode(Int.self, "amount") == 10)

            // Inside a transaction the failed statement aborts it; the transaction runs again.
            try await admin.query("ALTER TABLE hot ALTER COLUMN amount TYPE int4")
            let runs = Counter()
            let amount = try await db.transaction { tx -> Int in
                runs.increment()
                try await tx.query("UPDATE hot SET amount = amount + 1 WHERE id = 1")
                return try await tx.query(read, [1])[0].decode(Int.self, "amount")
            }
            #expect(amount == 11)
            #expect(runs.value == 2, "the transaction ran again after the stale statement")
            #expect(try await admin.query("SELECT amount FROM hot WHERE id = 1")[0].decode(Int.self, "amount") == 11)

            // A statement the server forgot (as behind a pooler): 26000, then a fresh prepare.
            try await db.executeScript("DEALLOCATE ALL")
            #expect(try await db.query(read, [1])[0].decode(Int.self, "amount") == 11)
            await db.close()
            await admin.close()
        }
    }

    @Test("reading a row an empty result does not have throws rowNotFound instead of trapping")
    func emptyResult() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let db = try await PostgresConnection.connect(configuration: config)
            let rows = try await db.query("SELECT 1 AS one WHERE false")
            let error = #expect(throws: PostgresError.self) { try rows[0].decode(Int.self, "one") }
            #expect(error?.code == .rowNotFound)
            #expect(rows[0].isNull("one"))
            await db.close()
        }
    }
}

/// A counter a transaction body can bump (the body is not `@Sendable`-restricted, but the
/// count must survive its reruns).
final class Counter: @unchecked Sendable {
    private(set) var value = 0
    func increment() { value += 1 }
}
