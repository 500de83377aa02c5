import Postgres
import ServiceLifecycle

/// Keeps a pool open while the process runs and closes it on shutdown.
public struct ClosePoolOnShutdown: Service {
    let pool: PostgresPool
    /// Wraps `pool`.
    public init(pool: PostgresPool) { self.pool = pool }
    public func run() async throws {
        try? await gracefulShutdown()
        await pool.close()
    }
}
