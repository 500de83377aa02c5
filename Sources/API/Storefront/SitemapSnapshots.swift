import Foundation

/// The sitemap's entries, read from the database at most once per `lifetime` however many
/// crawlers ask, and once for all who ask while a read is under way. A sitemap can list
/// 45,000 products; reading them per request would let anyone make the database do that work
/// at the request rate. A failed read is not kept: the next request tries again.
actor SitemapSnapshots {
    /// One URL of the sitemap, relative to the shop's address, with its `lastmod` date.
    struct Entry: Sendable, Equatable {
        let path: String
        let modified: String?
    }

    /// How long a read serves: as long as the response's `Cache-Control: max-age`.
    let lifetime: Duration
    private var current: (entries: [Entry], readAt: ContinuousClock.Instant)?
    private var reading: Task<[Entry], any Error>?

    init(lifetime: Duration = .seconds(300)) {
        self.lifetime = lifetime
    }

    /// The entries of the last read while it is younger than `lifetime`, else those of a new
    /// `read` (shared with every caller that arrives while it runs).
    func entries(read: @escaping @Sendable () async throws -> [Entry]) async throws -> [Entry] {
        if let current, ContinuousClock.now - current.readAt < lifetime { return current.entries }
        if let reading { return try await reading.value }
        let started = ContinuousClock.now
        let task = Task { try await read() }
        reading = task
        defer { reading = nil }
        let entries = try await task.value
        current = (entries, started)
        return entries
    }
}
