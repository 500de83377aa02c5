import Foundation
import Operations
import Postgres
import TestSupport
import Testing

@Suite("Migrations against the real server", .timeLimit(.minutes(10)))
struct MigratorTests {
    /// A temporary directory of migration files, removed afterwards.
    private func withFiles<T>(_ files: [String: String], _ body: (URL) async throws -> T) async throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnvironment.uniqueName("migrations"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, sql) in files { try sql.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return try await body(dir)
    }

    private let numbered = [
        "0001_create_log.sql": "CREATE TABLE log (seq serial PRIMARY KEY, step int8 NOT NULL);",
        "0002_first.sql": "INSERT INTO log (step) VALUES (2);",
        "0010_second.sql": "INSERT INTO log (step) VALUES (10); INSERT INTO log (step) VALUES (11);",
    ]

    @Test("pending files apply in order; a second run changes nothing; a new file applies alone")
    func appliesInOrderOnce() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            try await withFiles(numbered) { dir in
                let migrator = Migrator(directory: dir)
                let first = try await migrator.migrate(configuration: config)
                #expect(first.map(\.fileName) == ["0001_create_log.sql", "0002_first.sql", "0010_second.sql"])
                let db = try await PostgresConnection.connect(configuration: config)
                let steps = try await db.query("SELECT step FROM log ORDER BY seq").map { try $0.decode(Int.self, "step") }
                #expect(steps == [2, 10, 11])

                #expect(try await migrator.migrate(configuration: config).isEmpty)
                #expect(try await db.query("SELECT count(*) AS n FROM log")[0].decode(Int.self, "n") == 3)

                try "INSERT INTO log (step) VALUES (12);".write(to: dir.appendingPathComponent("0011_third.sql"), atomically: true, encoding: .utf8)
                #expect(try await migrator.migrate(configuration: config).map(\.fileName) == ["0011_third.sql"])
                let recorded = try await db.query("SELECT version FROM schema_migrations ORDER BY version").map { try $0.decode(Int.self, "version") }
                #expect(recorded == [1, 2, 10, 11])
                await db.close()
            }
        }
    }

    @Test("two concurrent runs do not conflict")
    func concurrentRuns() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            try await withFiles(numbered) { dir in
                let migrator = Migrator(directory: dir)
                async let a = migrator.migrate(configuration: config)
                async let b = migrator.migrate(configuration: config)
                let (first, second) = try await (a, b)
                // Exactly one run applied everything; the other found it done.
                #expect(first.count + second.count == 3)
                #expect(first.isEmpty || second.isEmpty)
                let db = try await PostgresConnection.connect(configuration: config)
                #expect(try await db.query("SELECT count(*) AS n FROM log")[0].decode(Int.self, "n") == 3)
                await db.close()
            }
        }
    }

    @Test("an edited applied file is refused with a clear message, and nothing else applies")
    func editedFileRefused() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            try await withFiles(numbered) { dir in
                let migrator = Migrator(directory: dir)
                try await migrator.migrate(configuration: config)
                try "INSERT INTO log (step) VALUES (99);".write(to: dir.appendingPathComponent("0002_first.sql"), atomically: true, encoding: .utf8)
                try "INSERT INTO log (step) VALUES (20);".write(to: dir.appendingPathComponent("0020_later.sql"), atomically: true, encoding: .utf8)
                let error = await #expect(throws: MigrationError.self) { try await migrator.migrate(configuration: config) }
                #expect(error?.code == .checksumMismatch)
                #expect(error?.message.contains("0002_first.sql was edited") == true)
                let db = try await PostgresConnection.connect(configuration: config)
                #expect(try await db.query("SELECT count(*) AS n FROM log")[0].decode(Int.self, "n") == 3)
                await db.close()
            }
        }
    }

    @Test("a file whose earlier text is named in checksums.txt is accepted, later files apply; a checksum the manifest does not name is still refused")
    func earlierTextAccepted() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            try await withFiles(numbered) { dir in
                let migrator = Migrator(directory: dir)
                try await migrator.migrate(configuration: config)
                let released = try migrator.loadMigrations()[1]
                #expect(released.fileName == "0002_first.sql")
                // The comment is reworded after the release; the statement is the same.
                try "-- The second step.\nINSERT INTO log (step) VALUES (2);".write(
                    to: dir.appendingPathComponent("0002_first.sql"), atomically: true, encoding: .utf8)
                try "INSERT INTO log (step) VALUES (20);".write(to: dir.appendingPathComponent("0020_later.sql"), atomically: true, encoding: .utf8)
                let reworded = try migrator.loadMigrations()[1]
                let manifest = dir.appendingPathComponent(Migrator.checksumsFileName)

                try "# released\n0002_first.sql \(reworded.checksum)\n".write(to: manifest, atomically: true, encoding: .utf8)
                let refused = await #expect(throws: MigrationError.self) { try await migrator.migrate(configuration: config) }
                #expect(refused?.code == .checksumMismatch)

                try "# released\n0002_first.sql \(reworded.checksum) \(released.checksum)\n".write(to: manifest, atomically: true, encoding: .utf8)
                #expect(try await migrator.migrate(configuration: config).map(\.fileName) == ["0020_later.sql"])
                let db = try await PostgresConnection.connect(configuration: config)
                let steps = try await db.query("SELECT step FROM log ORDER BY seq").map { try $0.decode(Int.self, "step") }
                #expect(steps == [2, 10, 11, 20], "the reworded file ran again or the later one did not run")
                await db.close()

                try "0002_first.sql not-a-checksum\n".write(to: manifest, atomically: true, encoding: .utf8)
                let malformed = #expect(throws: MigrationError.self) { try migrator.loadMigrations() }
                #expect(malformed?.code == .invalidFile && malformed?.message.contains("line 1") == true)
            }
        }
    }

    @Test("every file in the project's sql/ has its line in checksums.txt, with its text's checksum first: a released migration was not edited")
    func projectManifest() throws {
        let migrator = Migrator(directory: TestEnvironment.repositoryRoot.appendingPathComponent("sql"))
        let manifest = try migrator.checksumManifest()
        let migrations = try migrator.loadMigrations()
        for migration in migrations {
            #expect(
                manifest[migration.fileName]?.first == migration.checksum,
                """
                sql/\(migration.fileName) is \(migration.checksum) but checksums.txt says \(manifest[migration.fileName]?.first ?? "nothing"): \
                a new file needs its line; a released one must not change what it does (only a comment may, with the earlier checksum kept)
                """)
        }
        #expect(Set(manifest.keys) == Set(migrations.map(\.fileName)), "checksums.txt names a file sql/ does not have")
    }

    @Test("a failing file is rolled back entirely and not recorded")
    func failingFileRollsBack() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            try await withFiles(["0001_ok.sql": "CREATE TABLE a (x int);", "0002_bad.sql": "CREATE TABLE b (x int); SELECT no_such_function();"]) { dir in
                let error = await #expect(throws: MigrationError.self) { try await Migrator(directory: dir).migrate(configuration: config) }
                #expect(error?.code == .failed)
                #expect(error?.message.contains("0002_bad.sql") == true)
                let db = try await PostgresConnection.connect(configuration: config)
                #expect(try await db.query("SELECT to_regclass('b') IS NULL AS gone")[0].decode(Bool.self, "gone"))
                #expect(try await db.query("SELECT count(*) AS n FROM schema_migrations")[0].decode(Int.self, "n") == 1)
                await db.close()
            }
        }
    }

    @Test("badly named files are refused")
    func badNames() async throws {
        try await withFiles(["1_short.sql": "SELECT 1;"]) { dir in
            let error = #expect(throws: MigrationError.self) { try Migrator(directory: dir).loadMigrations() }
            #expect(error?.code == .invalidFile)
        }
    }

    @Test("the project's own sql/ migrates a fresh database to the core schema")
    func projectSchema() async throws {
        try await TestEnvironment.withTemporaryDatabase { config in
            let dir = TestEnvironment.repositoryRoot.appendingPathComponent("sql")
            let applied = try await Migrator(directory: dir).migrate(configuration: config)
            #expect(!applied.isEmpty)
            let db = try await PostgresConnection.connect(configuration: config)
            let tables = Set(try await db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").map { try $0.decode(String.self, "tablename") })
            for table in [
                "users", "refresh_tokens", "addresses", "categories", "products", "reviews", "carts", "cart_items",
                "orders", "order_items", "stock_reservations", "payments", "refunds", "notifications",
                "outbox", "inbox", "idempotency_keys",
            ] {
                #expect(tables.contains(table), "missing table \(table)")
            }
            await db.close()
        }
    }
}
