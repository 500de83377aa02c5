import Crypto
import Domain
import Foundation
import Logging
import Postgres

/// One schema migration file, `NNNN_description.sql`.
package struct Migration: Sendable, Hashable {
    /// The number before the first underscore; migrations apply in this order.
    package let version: Int
    /// The file name, e.g. `0001_core_schema.sql`.
    package let fileName: String
    /// The SQL script. It must not contain transaction control: the migrator wraps it.
    package let sql: String
    /// SHA-256 of the file, hex; an applied migration whose file changes is refused.
    package let checksum: String
    /// Checksums of earlier texts of this file whose statements were the same (a comment
    /// reworded), from the directory's ``Migrator/checksumsFileName``: a database that
    /// recorded one of them is not refused.
    package let earlierChecksums: Set<String>
}

/// A migration failure with a message meant for the operator.
package struct MigrationError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    package struct Code: Hashable, Sendable {
        let name: String
        /// A file name does not follow `NNNN_description.sql`, or two share a version.
        package static let invalidFile = Code(name: "invalidFile")
        /// An applied migration's file was edited.
        package static let checksumMismatch = Code(name: "checksumMismatch")
        /// An applied migration's file is gone.
        package static let missingFile = Code(name: "missingFile")
        /// A migration's SQL failed; nothing of it was kept.
        package static let failed = Code(name: "failed")
    }

    /// What kind of failure this is.
    package let code: Code
    /// What happened and what to do.
    package let message: String
    package var description: String { message }
}

/// Applies `sql/NNNN_description.sql` files to a database, each once, in order.
///
/// Each file runs in its own transaction together with its row in `schema_migrations`
/// (version, file name, checksum, time), so a failing file leaves no trace. A session-level
/// advisory lock serializes concurrent runs (several replicas starting at once): the second
/// waits, then finds nothing pending. Before applying anything, every applied file's
/// checksum is compared with the one recorded; an edited file stops the run, unless the
/// directory's ``checksumsFileName`` names the recorded checksum as an earlier text of the
/// same statements.
package struct Migrator: Sendable {
    /// Arbitrary constant shared by every Emporium migrator ("empo").
    static let advisoryLockKey = 0x656D_706F

    /// The manifest beside the migrations: `#` comments, and per released file a line of its
    /// name, its checksum now and the checksums of earlier texts with the same statements.
    package static let checksumsFileName = "checksums.txt"

    /// Where the `.sql` files are.
    package let directory: URL
    private let logger: Logger

    /// Creates a migrator reading `directory`.
    package init(directory: URL, logger: Logger = Logger(label: "emporium.migrate")) {
        self.directory = directory
        self.logger = logger
    }

    /// Reads and validates the migration files, in version order.
    package func loadMigrations() throws -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw MigrationError(code: .invalidFile, message: "cannot read migrations directory \(directory.path): \(error.localizedDescription)")
        }
        let manifest = try checksumManifest()
        var migrations: [Migration] = []
        for name in names.sorted() where name.hasSuffix(".sql") {
            let parts = name.split(separator: "_", maxSplits: 1)
            guard parts.count == 2, parts[0].count == 4, let version = Int(parts[0]), parts[1].count > 4 else {
                throw MigrationError(code: .invalidFile, message: "migration file \(name) must be named NNNN_description.sql")
            }
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            guard let sql = String(data: data, encoding: .utf8) else {
                throw MigrationError(code: .invalidFile, message: "migration file \(name) is not UTF-8")
            }
            let checksum = SHA256.hash(data: data).hexEncoded
            migrations.append(
                Migration(version: version, fileName: name, sql: sql, checksum: checksum, earlierChecksums: Set(manifest[name]?.dropFirst() ?? [])))
        }
        for (previous, next) in zip(migrations, migrations.dropFirst()) where previous.version == next.version {
            throw MigrationError(code: .invalidFile, message: "migrations \(previous.fileName) and \(next.fileName) share version \(next.version)")
        }
        return migrations
    }

    /// The directory's ``checksumsFileName`` as file name → checksums (now, then earlier);
    /// empty when there is none.
    package func checksumManifest() throws -> [String: [String]] {
        let url = directory.appendingPathComponent(Self.checksumsFileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return [:] }
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw MigrationError(code: .invalidFile, message: "cannot read \(url.path) as UTF-8 text")
        }
        var manifest: [String: [String]] = [:]
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            let hex = fields.dropFirst().allSatisfy { $0.count == 64 && $0.allSatisfy(\.isHexDigit) }
            guard fields.count >= 2, fields[0].hasSuffix(".sql"), hex, manifest[fields[0]] == nil else {
                throw MigrationError(
                    code: .invalidFile,
                    message: "\(url.path) line \(index + 1) must be a migration's file name followed by SHA-256 checksums in hex, one line per file")
            }
            manifest[fields[0]] = Array(fields.dropFirst())
        }
        return manifest
    }

    /// Applies pending migrations; returns the ones applied by this call.
    @discardableResult
    package func migrate(configuration: PostgresConfiguration) async throws -> [Migration] {
        let migrations = try loadMigrations()
        let db = try await PostgresConnection.connect(configuration: configuration, logger: logger)
        do {
            // Held for the whole run; released explicitly, and by the server if we die.
            try await db.query("SELECT pg_advisory_lock($1)", [Self.advisoryLockKey])
            let applied = try await applyPending(migrations, on: db)
            try await db.query("SELECT pg_advisory_unlock($1)", [Self.advisoryLockKey])
            await db.close()
            return applied
        } catch {
            _ = try? await db.query("SELECT pg_advisory_unlock($1)", [Self.advisoryLockKey])
            await db.close()
            throw error
        }
    }

    private func applyPending(_ migrations: [Migration], on db: PostgresConnection) async throws -> [Migration] {
        try await db.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
              version int8 PRIMARY KEY,
              file_name text NOT NULL,
              checksum text NOT NULL,
              applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        var recorded: [Int: (fileName: String, checksum: String)] = [:]
        for row in try await db.query("SELECT version, file_name, checksum FROM schema_migrations") {
            recorded[try row.decode(Int.self, "version")] = (try row.decode(String.self, "file_name"), try row.decode(String.self, "checksum"))
        }
        let byVersion = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, entry) in recorded.sorted(by: { $0.key < $1.key }) {
            guard let file = byVersion[version] else {
                throw MigrationError(code: .missingFile, message: "migration \(entry.fileName) was applied but its file is missing from \(directory.path)")
            }
            if file.earlierChecksums.contains(entry.checksum) {
                logger.debug(
                    "migration applied from an earlier text with the same statements",
                    metadata: ["migration": "\(file.fileName)", "recorded_checksum": "\(entry.checksum)"])
            }
            guard file.checksum == entry.checksum || file.earlierChecksums.contains(entry.checksum) else {
                throw MigrationError(
                    code: .checksumMismatch,
                    message:
                        "migration \(file.fileName) was edited after it was applied (recorded checksum \(entry.checksum.prefix(12))…, file now \(file.checksum.prefix(12))…). Applied migrations must not change: restore the file and put the change in a new migration (if only a comment changed, list the recorded checksum after the new one in \(Self.checksumsFileName))."
                )
            }
        }
        var applied: [Migration] = []
        for migration in migrations where recorded[migration.version] == nil {
            logger.info("applying migration", metadata: ["migration": "\(migration.fileName)"])
            do {
                try await db.transaction { db in
                    try await db.executeScript(migration.sql)
                    try await db.query(
                        "INSERT INTO schema_migrations (version, file_name, checksum) VALUES ($1, $2, $3)",
                        [migration.version, migration.fileName, migration.checksum])
                }
            } catch let error as PostgresError {
                throw MigrationError(code: .failed, message: "migration \(migration.fileName) failed and was rolled back: \(error)")
            }
            applied.append(migration)
        }
        return applied
    }
}
