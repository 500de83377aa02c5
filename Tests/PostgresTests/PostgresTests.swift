import Foundation
import Postgres
import Synchronization
import TestSupport
import Testing

@Suite("Postgres against the real server", .timeLimit(.minutes(10)))
struct PostgresTests {
    @Test("every supported type round-trips, NULL and non-ASCII text included")
    func typesRoundTrip() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let db = try await PostgresConnection.connect(configuration: config)
            try await db.query(
                """
                CREATE TABLE samples (
                  id serial PRIMARY KEY, i int8, i4 int4, s text, b bool, d float8, u uuid, t timestamptz,
                  bytes bytea, doc jsonb, ints int8[], strings text[], ids uuid[], maybe text
                )
                """)
            let uuid = UUID()
            let date = Date(timeIntervalSince1970: 1_763_751_234.123456)
            let bytes = Data([0, 1, 2, 0xfe, 0xff, 0x5c, 0x22])
            let text = "Grüße, 世界 — ☃ \"quoted\" \\ back'slash"
            let json = try PostgresJSON(encoding: ["name": "Zoë", "tags": "a,b"])
            let strings = ["plain", "with,comma", "with \"quote\"", "back\\slash", "", "NULL", "{braces}", "ünï"]
            try await db.query(
                """
                INSERT INTO samples (i, i4, s, b, d, u, t, bytes, doc, ints, strings, ids, maybe)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                """,
                [
                    Int.min, Int32.max, text, true, -1234.5e-3, uuid, date, bytes, json,
                    [1, -2, Int.max], strings, [uuid, UUID()], String?.none,
                ])
            let row = try #require(try await db.query("SELECT * FROM samples").first)
            #expect(try row.decode(Int.self, "i") == Int.min)
            #expect(try row.decode(Int32.self, "i4") == Int32.max)
            #expect(try row.decode(String.self, "s") == text)
            #expect(try row.decode(Bool.self, "b") == true)
            #expect(try row.decode(Double.self, "d") == -1234.5e-3)
            #expect(try row.decode(UUID.self, "u") == uuid)
            let decodedDate = try row.decode(Date.self, "t")
            #expect(abs(decodedDate.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
            #expect(try row.decode(Data.self, "bytes") == bytes)
            #expect(try row.decode(PostgresJSON.self, "doc").decode(as: [String: String].self) == ["name": "Zoë", "tags": "a,b"])
            #expect(try row.decode([Int].self, "ints") == [1, -2, Int.max])
            #expect(try row.decode([String].self, "strings") == strings)
            #expect(try row.decode([UUID].self, "ids").first == uuid)
            #expect(try row.decode(String?.self, "maybe") == nil)
            #expect(row.isNull("maybe"))

            // NULLs of every type bind and decode as nil.
            try await db.query(
                "INSERT INTO samples (i, s, b, d, u, t, bytes, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [Int?.none, String?.none, Bool?.none, Double?.none, UUID?.none, Date?.none, Data?.none, PostgresJSON?.none])
            let nulls = try #require(try await db.query("SELECT * FROM samples WHERE i IS NULL").first)
            #expect(try nulls.decode(Int?.self, "i") == nil)
            #expect(try nulls.decode(Date?.self, "t") == nil)
            #expect(try nulls.decode(Data?.self, "bytes") == nil)
            await db.close()
        }
    }

    @Test("uuids and arrays are written as the server writes them and read back whole: any case, every byte, escapes by byte")
    func uuidAndArrayText() async throws {
        let db = try await PostgresConnection.connect(configuration: TestEnvironment.postgres())
        // 500 random ids, bound one by one and as an array: the server's text of each is ours.
        let ids = (0..<500).map { _ in UUID() } + [UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))]
        let rows = try await db.query(
            "SELECT u, u::text AS text, ord FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, ord) ORDER BY ord", [ids])
        #expect(rows.count == ids.count)
        for (row, id) in zip(rows, ids) {
            #expect(try row.decode(UUID.self, "u") == id)
            #expect(try row.decode(String.self, "text") == id.uuidString.lowercased())
        }
        let single = try #require(try await db.query("SELECT $1::uuid::text AS text", [ids[0]]).first)
        #expect(try single.decode(String.self, "text") == ids[0].uuidString.lowercased())
        // Text columns holding ids in upper case read as the same id; malformed ones are refused.
        let upper = try #require(try await db.query("SELECT $1::text AS u", [ids[1].uuidString]).first)
        #expect(try upper.decode(UUID.self, "u") == ids[1])
        for bad in [
            "", "not-a-uuid", String(ids[2].uuidString.dropLast()), ids[2].uuidString + "0", "{\(ids[2].uuidString)}",
            ids[2].uuidString.replacingOccurrences(of: "-", with: "_"), "g" + ids[2].uuidString.dropFirst(),
            ids[2].uuidString.replacingOccurrences(of: "-", with: "") + "----",
        ] {
            let row = try #require(try await db.query("SELECT $1::text AS u", [bad]).first)
            #expect(throws: PostgresError.self, "\(bad)") { try row.decode(UUID.self, "u") }
        }
        // Quotes and backslashes are escaped by byte, also one that a combining mark follows
        // (one Character with the quote); NULL elements stay NULL, the text "NULL" stays text.
        let strings: [String?] = ["\"\u{301}", "\\\u{301}", "a\"b\\c", nil, "NULL", "", "{}", ",", "日本\"語", "e\u{301}"]
        let echoed = try #require(try await db.query("SELECT $1::text[] AS a, array_length($1::text[], 1) AS n", [strings]).first)
        #expect(try echoed.decode([String?].self, "a") == strings)
        #expect(try echoed.decode(Int.self, "n") == strings.count)
        await db.close()
    }

    @Test("decoding errors name the column and the types")
    func decodingErrors() async throws {
        let db = try await PostgresConnection.connect(configuration: TestEnvironment.postgres())
        let row = try #require(try await db.query("SELECT 'x'::text AS name, NULL::int8 AS missing").first)
        let mismatch = #expect(throws: PostgresError.self) { try row.decode(Int.self, "name") }
        #expect(mismatch?.code == .typeMismatch)
        #expect(mismatch?.message.contains("\"name\"") == true)
        #expect(mismatch?.message.contains("text") == true)
        let null = #expect(throws: PostgresError.self) { try row.decode(Int.self, "missing") }
        #expect(null?.code == .unexpectedNull)
        let unknown = #expect(throws: PostgresError.self) { try row.decode(Int.self, "nope") }
        #expect(unknown?.code == .columnNotFound)
        await db.close()
    }

    @Test("a string holding SQL is stored verbatim")
    func injectionIsData() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let db = try await PostgresConnection.connect(configuration: config)
            try await db.query("CREATE TABLE users (name text)")
            let hostile = "'); DROP TABLE users; --"
            try await db.query("INSERT INTO users (name) VALUES ($1)", [hostile])
            let rows = try await db.query("SELECT name FROM users WHERE name = $1", [hostile])
            #expect(rows.count == 1)
            #expect(try rows[0].decode(String.self, "name") == hostile)
            await db.close()
        }
    }

    @Test("a throw inside a transaction rolls it back")
    func transactionRollback() async throws {
        struct Boom: Error {}
        try await TestEnvironment.withTemporaryDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 2)
            try await pool.query("CREATE TABLE t (v int8)")
            await #expect(throws: Boom.self) {
                try await pool.withTransaction { db in
                    try await db.query("INSERT INTO t VALUES ($1)", [1])
                    throw Boom()
                }
            }
            try await pool.withTransaction { db in try await db.query("INSERT INTO t VALUES ($1)", [2]) }
            let values = try await pool.query("SELECT v FROM t ORDER BY v").map { try $0.decode(Int.self, "v") }
            #expect(values == [2])

            // A server error swallowed inside the transaction makes COMMIT fail loudly.
            try await pool.query("CREATE TABLE u (v int8 PRIMARY KEY)")
            await #expect(throws: PostgresError.self) {
                try await pool.withTransaction { db in
                    try await db.query("INSERT INTO u VALUES (1)")
                    _ = try? await db.query("INSERT INTO u VALUES (1)")
                }
            }
            #expect(try await pool.query("SELECT count(*) AS n FROM u")[0].decode(Int.self, "n") == 0)
            await pool.close()
        }
    }

    @Test("a unique violation carries SQLSTATE 23505 and the constraint name")
    func uniqueViolation() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let db = try await PostgresConnection.connect(configuration: config)
            try await db.query("CREATE TABLE accounts (email text CONSTRAINT accounts_email_key UNIQUE)")
            try await db.query("INSERT INTO accounts VALUES ($1)", ["a@example.com"])
            let error = await #expect(throws: PostgresError.self) {
                try await db.query("INSERT INTO accounts VALUES ($1)", ["a@example.com"])
            }
            #expect(error?.sqlState == "23505")
            #expect(error?.isUniqueViolation == true)
            #expect(error?.constraint == "accounts_email_key")
            #expect(error?.table == "accounts")
            #expect(error?.detail?.contains("a@example.com") == true)
            // The connection is still usable after a server error.
            #expect(try await db.query("SELECT 1 AS one")[0].decode(Int.self, "one") == 1)
            await db.close()
        }
    }

    @Test("50 concurrent tasks over a pool of 5 finish without deadlock")
    func poolConcurrency() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 5, acquireTimeout: .seconds(30))
            try await pool.query("CREATE TABLE hits (task int8, backend int8)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<50 {
                    group.addTask {
                        try await pool.withTransaction { db in
                            try await db.query("SELECT pg_sleep(0.02)")
                            try await db.query("INSERT INTO hits VALUES ($1, pg_backend_pid())", [task])
                        }
                    }
                }
                try await group.waitForAll()
            }
            let summary = try await pool.query("SELECT count(*) AS n, count(DISTINCT backend) AS backends FROM hits")[0]
            #expect(try summary.decode(Int.self, "n") == 50)
            #expect(try summary.decode(Int.self, "backends") <= 5)
            #expect(pool.statistics.open <= 5)
            #expect(pool.statistics.waiting == 0)
            await pool.close()
        }
    }

    @Test("a pooled session's borrower runs on the session's own thread, and goes on after that thread stops")
    func borrowerRunsOnSessionThread() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let pool = PostgresPool(configuration: config, maxConnections: 1, acquireTimeout: .seconds(10))
            // Opened in the slot, then reused: both ways in run the body on the session's thread.
            for _ in 0..<2 {
                let onItsThread = try await pool.withTransaction { db -> [Bool] in
                    let before = db.isOnItsThread
                    try await db.query("SELECT 1")
                    return [before, db.isOnItsThread]
                }
                #expect(onItsThread == [true, true])
            }
            // A body that closes its own session stops the thread it runs on; what it does
            // after that still runs (elsewhere), and the pool replaces the session.
            let finished = Mutex(false)
            let borrower = Task {
                try await pool.withConnection { db in
                    await db.close()
                    // A suspension: the task is enqueued again on the thread it prefers,
                    // which has stopped.
                    await Task.yield()
                }
                finished.withLock { $0 = true }
            }
            let wentOn = await TestEnvironment.eventually(timeout: .seconds(10)) { finished.withLock { $0 } }
            #expect(wentOn, "the borrower was left without a thread after its session's thread stopped")
            guard wentOn else { return }
            try await borrower.value
            #expect(try await pool.query("SELECT 1 AS one")[0].decode(Int.self, "one") == 1)
            await pool.close()
        }
    }

    @Test("a waiter that gets no connection within the acquire timeout fails clearly")
    func acquireTimeout() async throws {
        let pool = PostgresPool(configuration: try TestEnvironment.postgres(), maxConnections: 1, acquireTimeout: .milliseconds(200))
        async let holder: Void = pool.withConnection { db in _ = try await db.query("SELECT pg_sleep(1.5)") }
        try await Task.sleep(for: .milliseconds(300))
        let error = await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(error?.code == .poolTimeout)
        #expect(error?.isTransient == true)
        try await holder
        #expect(try await pool.query("SELECT 1 AS one")[0].decode(Int.self, "one") == 1)
        await pool.close()
    }

    @Test("a backend killed with pg_terminate_backend is noticed and replaced")
    func terminatedBackend() async throws {
        let config = try TestEnvironment.postgres()
        let admin = try await PostgresConnection.connect(configuration: config)

        // A lone connection reports the loss as a transient connectionLost error.
        let lone = try await PostgresConnection.connect(configuration: config)
        try await admin.query("SELECT pg_terminate_backend($1::int4)", [Int(lone.backendPID)])
        let lost = await #expect(throws: PostgresError.self) { try await lone.query("SELECT 1") }
        #expect(lost?.code == .connectionLost)
        #expect(lost?.isTransient == true)
        #expect(lone.isBroken)

        // A pool notices before reuse and hands out a fresh session.
        let pool = PostgresPool(configuration: config, maxConnections: 1)
        let first = try await pool.query("SELECT pg_backend_pid() AS pid")[0].decode(Int.self, "pid")
        try await admin.query("SELECT pg_terminate_backend($1::int4)", [first])
        #expect(
            await TestEnvironment.eventually {
                (try? await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [first]).count) == 0
            })
        let second = try await pool.query("SELECT pg_backend_pid() AS pid")[0].decode(Int.self, "pid")
        #expect(second != first)

        // A session killed while lent out fails that one call; the pool replaces it after.
        let third = try await pool.withConnection { db -> Int in
            try await admin.query("SELECT pg_terminate_backend($1::int4)", [Int(db.backendPID)])
            try await Task.sleep(for: .milliseconds(100))
            await #expect(throws: PostgresError.self) { try await db.query("SELECT 1") }
            return Int(db.backendPID)
        }
        let fourth = try await pool.query("SELECT pg_backend_pid() AS pid")[0].decode(Int.self, "pid")
        #expect(fourth != third)
        await pool.close()
        await admin.close()
    }

    @Test("a wrong password or a closed port fails clearly within the connect timeout")
    func connectFailures() async throws {
        var wrongPassword = try TestEnvironment.postgres()
        wrongPassword.password = "definitely-not-the-password"
        wrongPassword.connectTimeout = .seconds(2)
        let clock = ContinuousClock()
        var start = clock.now
        let auth = await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(configuration: wrongPassword)
        }
        #expect(auth?.code == .connectionFailed)
        #expect(auth?.message.contains("password authentication failed") == true)
        #expect(auth?.message.contains("definitely-not-the-password") == false)
        #expect(clock.now - start < .seconds(10))

        var closedPort = try TestEnvironment.postgres()
        closedPort.port = 1
        closedPort.connectTimeout = .seconds(2)
        start = clock.now
        let refused = await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(configuration: closedPort)
        }
        #expect(refused?.code == .connectionFailed)
        #expect(refused?.isTransient == true)
        #expect(clock.now - start < .seconds(10))

        // A pool surfaces the same error instead of hanging.
        let pool = PostgresPool(configuration: closedPort, maxConnections: 2)
        await #expect(throws: PostgresError.self) { try await pool.query("SELECT 1") }
        #expect(pool.statistics.open == 0)
    }

    @Test("the statement timeout cancels a slow statement with a transient error")
    func statementTimeout() async throws {
        var config = try TestEnvironment.postgres()
        config.statementTimeout = .milliseconds(200)
        let db = try await PostgresConnection.connect(configuration: config)
        let error = await #expect(throws: PostgresError.self) { try await db.query("SELECT pg_sleep(5)") }
        #expect(error?.sqlState == "57014")
        #expect(error?.isTransient == true)
        #expect(try await db.query("SELECT 1 AS one")[0].decode(Int.self, "one") == 1)
        await db.close()
    }

    @Test("DATABASE_URL parsing")
    func urlParsing() throws {
        let config = try PostgresConfiguration(url: "postgres://us%40er:p%3Ass@db.example:6543/shop")
        #expect(config.host == "db.example")
        #expect(config.port == 6543)
        #expect(config.user == "us@er")
        #expect(config.password == "p:ss")
        #expect(config.database == "shop")
        #expect(throws: PostgresError.self) { try PostgresConfiguration(url: "mysql://x@y/z") }
        #expect(throws: PostgresError.self) { try PostgresConfiguration(url: "postgres://host-only") }

        let socket = try PostgresConfiguration(url: "postgresql://shop:secret@/orders?host=/run/postgresql")
        #expect(socket.host == "/run/postgresql")
        #expect(socket.usesUnixSocket)
        #expect(socket.port == 5432)
        #expect(socket.user == "shop")
        #expect(socket.database == "orders")
        #expect(!config.usesUnixSocket)
        // A parameter that would be ignored is refused, and so is a URL naming no server at all.
        #expect(throws: PostgresError.self) { try PostgresConfiguration(url: "postgres://u:p@db/shop?sslmode=disable") }
        #expect(throws: PostgresError.self) { try PostgresConfiguration(url: "postgres://u:p@/shop") }
    }

    @Test("through the server's Unix-domain socket when DATABASE_URL names its directory")
    func unixSocket() async throws {
        let directory = try #require(ProcessInfo.processInfo.environment["PG_SOCKET_DIR"], "PG_SOCKET_DIR names the test server's socket directory")
        let tcp = try TestEnvironment.postgres()
        let config = try PostgresConfiguration(url: "postgres://\(tcp.user):\(tcp.password ?? "")@/\(tcp.database)?host=\(directory)")
        #expect(config.usesUnixSocket)
        var withPort = config
        withPort.port = tcp.port
        let db = try await PostgresConnection.connect(configuration: withPort)
        // inet_server_addr() is NULL exactly when the session came in over a Unix-domain socket.
        #expect(try await db.query("SELECT inet_server_addr() IS NULL AS local")[0].decode(Bool.self, "local"))
        await db.close()

        var missing = withPort
        missing.host = directory + "/no-such-directory"
        let error = await #expect(throws: PostgresError.self) { try await PostgresConnection.connect(configuration: missing) }
        #expect(error?.message.contains("the socket \(missing.host)/.s.PGSQL.\(tcp.port)") == true)
    }
}
