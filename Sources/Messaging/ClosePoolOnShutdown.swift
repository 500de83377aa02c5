import Postgres
import ServiceLifecycle

/// Keeps a pool open while the process runs and closes it on shutdown.
package struct ClosePoolOnShutdown: Service {
    let pool: PostgresPool
    /// Wraps `pool`.
    package init(pool: PostgresPool) { self.pool = pool }
    package func run() async throws {
        try? await gracefulShutdown()
        await pool.close()
    }
}
