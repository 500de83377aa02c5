import Foundation
import Postgres
import TestSupport
import Testing

/// Statements that share a round trip (libpq pipeline mode): a transaction's `BEGIN` with its
/// first statement, and writes queued with `enqueue` with the next statement or the `COMMIT`.
/// What must hold is what a transaction promises: all or nothing, and the first failure
/// reported.
@Suite("Postgres pipelines", .timeLimit(.minutes(2)))
struct PipelineTests {
    /// A session and a second one to look from, on a table `t (id int4 PRIMARY KEY, note text)`.
    private func withTable(_ body: (PostgresConnection, PostgresConnection) async throws -> Void) async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let db = try await PostgresConnection.connect(configuration: config)
            let observer = try await PostgresConnection.connect(configuration: config)
            try await db.query("CREATE TABLE t (id int4 PRIMARY KEY, note text NOT NULL)")
            try await body(db, observer)
            await db.close()
            await observer.close()
        }
    }

    private func ids(_ observer: PostgresConnection) async throws -> [Int] {
        try await observer.query("SELECT id FROM t ORDER BY id").map { try $0.decode(Int.self, "id") }
    }

    @Test("queued writes commit with the transaction, are invisible before it, and are never sent when the body throws")
    func queuedWritesAreAtomic() async throws {
        try await withTable { db, observer in
            try await db.transaction { tx in
                try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "one"])
                try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [2, "two"])
                // Nothing has gone out yet, so nothing is visible, not even uncommitted.
                #expect(try await ids(observer) == [])
                // The next statement carries BEGIN and both inserts, and sees them.
                #expect(try await tx.query("SELECT count(*) AS n FROM t")[0].decode(Int.self, "n") == 2)
                try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [3, "three"])
            }
            #expect(try await ids(observer) == [1, 2, 3])

            struct Abandon: Error {}
            await #expect(throws: Abandon.self) {
                try await db.transaction { tx in
                    try await tx.query("INSERT INTO t VALUES (4, 'four')")
                    try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [5, "five"])
                    throw Abandon()
                }
            }
            #expect(try await ids(observer) == [1, 2, 3])
            #expect(await db.isUsable(), "the session is idle again after the rollback")
        }
    }

    @Test("a queued write that fails is thrown by the next statement, skips the rest and rolls everything back")
    func failureInsideThePipeline() async throws {
        try await withTable { db, observer in
            try await db.query("INSERT INTO t VALUES (1, 'one')")
            let error = await #expect(throws: PostgresError.self) {
                try await db.transaction { tx in
                    try await tx.query("INSERT INTO t VALUES (10, 'ten')")
                    try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [11, "eleven"])
                    try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "duplicate"])
                    try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [12, "twelve"])
                    try await tx.query("INSERT INTO t VALUES (13, 'thirteen')")
                    Issue.record("the statement after a failed queued write returned")
                }
            }
            #expect(error?.isUniqueViolation == true, "the queued write's own error: \(String(describing: error))")
            #expect(try await ids(observer) == [1])
            #expect(await db.isUsable())
            // The session goes on: its next transaction works.
            try await db.transaction { tx in try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [2, "two"]) }
            #expect(try await ids(observer) == [1, 2])
        }
    }

    @Test("a queued write that fails at COMMIT fails the transaction and leaves the session idle")
    func failureAtCommit() async throws {
        try await withTable { db, observer in
            try await db.query("INSERT INTO t VALUES (1, 'one')")
            let before = db.backendPID
            let error = await #expect(throws: PostgresError.self) {
                try await db.transaction { tx in
                    try await tx.query("INSERT INTO t VALUES (2, 'two')")
                    try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "duplicate"])
                }
            }
            #expect(error?.isUniqueViolation == true)
            #expect(try await ids(observer) == [1])
            #expect(await db.isUsable())
            #expect(db.backendPID == before)
            #expect(try await db.query("SELECT 1 AS one")[0].decode(Int.self, "one") == 1)
        }
    }

    @Test("a statement text that fails to prepare in a pipeline reports its error every time, and the session goes on")
    func failedPrepareIsForgotten() async throws {
        try await withTable { db, observer in
            for _ in 0..<2 {
                let error = await #expect(throws: PostgresError.self) {
                    try await db.transaction { tx in try await tx.query("SELECT no_such_column FROM t") }
                }
                // 42703 undefined_column, not 26000 "prepared statement does not exist".
                #expect(error?.sqlState == "42703")
            }
            try await db.transaction { tx in
                try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [7, "seven"])
                try await tx.enqueue("UPDATE t SET note = $2 WHERE id = $1", [7, "SEVEN"])
            }
            #expect(try await observer.query("SELECT note FROM t WHERE id = 7")[0].decode(String.self, "note") == "SEVEN")
        }
    }

    @Test("a queued statement the server forgot (26000, as behind a pooler) is prepared afresh and its transaction runs again")
    func staleQueuedStatement() async throws {
        try await withTable { db, observer in
            let insert = "INSERT INTO t VALUES ($1, $2)"
            try await db.transaction { tx in try await tx.enqueue(insert, [1, "one"]) }
            try await db.executeScript("DEALLOCATE ALL")
            let runs = Counter()
            try await db.transaction { tx in
                runs.increment()
                try await tx.enqueue(insert, [2, "two"])
            }
            #expect(runs.value == 2, "the transaction ran again after the stale statement")
            #expect(try await ids(observer) == [1, 2])
        }
    }

    @Test("a backend terminated while its pipeline runs fails the transaction at once as unavailable, and the pool opens a fresh session")
    func backendKilledMidPipeline() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 1)
            let observer = try await PostgresConnection.connect(configuration: config)
            try await pool.query("CREATE TABLE t (id int4 PRIMARY KEY)")
            let victim = try await pool.withConnection { $0.backendPID }
            let killer = Task {
                // Once the pipeline's sleep is running on the victim's backend, end that backend.
                await TestEnvironment.eventually(timeout: .seconds(20)) {
                    let sleeping = try? await observer.query(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'", [victim])[0]
                        .decode(Int.self, "n")
                    guard sleeping == 1 else { return false }
                    return (try? await observer.query("SELECT pg_terminate_backend($1) AS ended", [victim])[0].decode(Bool.self, "ended")) == true
                }
            }
            let started = ContinuousClock.now
            let error = await #expect(throws: PostgresError.self) {
                try await pool.withTransaction { tx in
                    try await tx.enqueue("INSERT INTO t VALUES ($1)", [1])
                    try await tx.query("SELECT pg_sleep(30)")
                }
            }
            #expect(await killer.value, "the backend was never seen running the pipeline's sleep")
            #expect(error?.isUnavailable == true, "\(String(describing: error))")
            #expect(ContinuousClock.now - started < .seconds(20), "the pipeline waited for the sleep instead of noticing the end of its session")
            let after = try await pool.withConnection { db -> Int32 in
                try await db.query("SELECT 1")
                return db.backendPID
            }
            #expect(after != victim)
            #expect(try await observer.query("SELECT count(*) AS n FROM t")[0].decode(Int.self, "n") == 0)
            await observer.close()
            await pool.close()
        }
    }

    @Test("rows come back from the statement that asked, with BEGIN and queued writes ahead of it")
    func rowsOfTheLastStatement() async throws {
        try await withTable { db, _ in
            let notes = try await db.transaction { tx -> [String] in
                try await tx.enqueue("INSERT INTO t SELECT g, 'n' || g FROM generate_series(1, $1::int4) AS g", [300])
                return try await tx.query("SELECT note FROM t WHERE id = ANY($1) ORDER BY id", [[2, 299]]).map { try $0.decode(String.self, "note") }
            }
            #expect(notes == ["n2", "n299"])
        }
    }

    @Test("a transaction that runs no statement commits nothing and needs no round trip; enqueue outside one runs at once")
    func emptyTransactionAndEnqueueOutside() async throws {
        try await withTable { db, observer in
            let value = try await db.transaction { _ in 42 }
            #expect(value == 42)
            #expect(await db.isUsable())
            try await db.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "one"])
            #expect(try await ids(observer) == [1])
        }
    }

    @Test("preferGenericPlans holds for the rest of its transaction only: a statement that takes an array is planned once, not on every call")
    func genericPlansForOneTransaction() async throws {
        try await withTable { db, _ in
            try await db.query("INSERT INTO t SELECT i, 'n' FROM generate_series(1, 1000) AS i")
            try await db.query("ANALYZE t")
            let lookup = "SELECT count(*) AS n FROM t WHERE id = ANY($1)"
            func plans() async throws -> (generic: Int, custom: Int) {
                let row = try await db.query("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", [lookup])[0]
                return (try row.decode(Int.self, "generic_plans"), try row.decode(Int.self, "custom_plans"))
            }
            func mode() async throws -> String { try await db.query("SHOW plan_cache_mode")[0].decode(String.self, "plan_cache_mode") }
            // By default the plan for the array at hand always looks cheaper: planned every call.
            for i in 1...8 { try await db.transaction { try await $0.query(lookup, [[i, i + 1]]) } }
            let before = try await plans()
            #expect(before.custom == 8)
            for i in 1...8 {
                let count = try await db.transaction { db in
                    try db.preferGenericPlans()
                    let count = try await db.query(lookup, [[i, i + 1]])[0].decode(Int.self, "n")
                    #expect(try await mode() == "force_generic_plan")
                    return count
                }
                #expect(count == 2)
            }
            let after = try await plans()
            #expect(after.custom == before.custom, "planned again for the array at hand")
            #expect(after.generic == before.generic + 8)
            // The setting ends with its transaction, and outside one it does nothing.
            #expect(try await mode() == "auto")
            try db.preferGenericPlans()
            #expect(try await mode() == "auto")
        }
    }

    @Test("a migration script inside a transaction sends the queued writes first")
    func scriptAfterQueuedWrites() async throws {
        try await withTable { db, observer in
            try await db.transaction { tx in
                try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "one"])
                try await tx.executeScript("INSERT INTO t VALUES (2, 'two'); INSERT INTO t VALUES (3, 'three')")
            }
            #expect(try await ids(observer) == [1, 2, 3])
        }
    }

    @Test("several reads in one round trip each return their own rows, after BEGIN and queued writes; one failing fails the transaction")
    func severalReadsAtOnce() async throws {
        try await withTable { db, observer in
            let answers = try await db.transaction { tx -> [PostgresRows] in
                try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "one"])
                return try await tx.queries([
                    PostgresStatement("SELECT count(*) AS n FROM t"),
                    PostgresStatement("INSERT INTO t VALUES ($1, $2) RETURNING note", [2, "two"]),
                    PostgresStatement("SELECT note FROM t WHERE id = ANY($1) ORDER BY id", [[1, 2]]),
                ])
            }
            #expect(answers.count == 3)
            #expect(try answers[0][0].decode(Int.self, "n") == 1, "the queued write went out first")
            #expect(try answers[1][0].decode(String.self, "note") == "two")
            #expect(try answers[2].map { try $0.decode(String.self, "note") } == ["one", "two"])
            #expect(try await ids(observer) == [1, 2])

            let error = await #expect(throws: PostgresError.self) {
                try await db.transaction { tx in
                    try await tx.queries([
                        PostgresStatement("INSERT INTO t VALUES ($1, $2)", [3, "three"]),
                        PostgresStatement("INSERT INTO t VALUES ($1, $2)", [1, "again"]),
                        PostgresStatement("SELECT 1 AS one"),
                    ])
                }
            }
            #expect(error?.sqlState == "23505")
            #expect(try await ids(observer) == [1, 2], "nothing of the failed transaction is left")
            #expect(await db.isUsable())
        }
    }

    @Test("queryAndCommit commits with the last statement: its rows come back, another session sees the rows before the body returns, nothing may follow")
    func lastStatementWithTheCommit() async throws {
        try await withTable { db, observer in
            let note = try await db.transaction { tx -> String in
                try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "one"])
                let note = try await tx.queryAndCommit("INSERT INTO t VALUES ($1, $2) RETURNING note", [2, "two"])[0].decode(String.self, "note")
                // Committed already, in that one round trip: no COMMIT is left to send.
                #expect(try await ids(observer) == [1, 2])
                let late = await #expect(throws: PostgresError.self) { try await tx.enqueue("INSERT INTO t VALUES (3, 'three')") }
                #expect(late?.sqlState == "25000")
                return note
            }
            #expect(note == "two")
            #expect(try await ids(observer) == [1, 2])
            #expect(await db.isUsable())

            // A queued write that fails takes the whole transaction with it, the COMMIT included.
            let failed = await #expect(throws: PostgresError.self) {
                try await db.transaction { tx in
                    try await tx.enqueue("INSERT INTO t VALUES ($1, $2)", [1, "again"])
                    try await tx.queryAndCommit("INSERT INTO t VALUES ($1, $2) RETURNING note", [4, "four"])
                }
            }
            #expect(failed?.sqlState == "23505")
            #expect(try await ids(observer) == [1, 2])
            #expect(await db.isUsable())

            let outside = await #expect(throws: PostgresError.self) { try await db.queryAndCommit("SELECT 1 AS one") }
            #expect(outside?.sqlState == "25000")
        }
    }
}
