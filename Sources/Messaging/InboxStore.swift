import Domain
import Foundation
import Observability
import Postgres
import Units

/// Records processed messages per consumer so a redelivery is recognised.
package enum InboxStore {
    /// Records `messageID` for `consumer`, handled by this process, in the transaction on
    /// `db`; false when it was already recorded (a duplicate: skip the effects, ack the message).
    package static func claim(consumer: String, messageID: UUID, on db: PostgresConnection) async throws -> Bool {
        try await db.query(
            "INSERT INTO inbox (consumer, message_id, handled_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [consumer, messageID, ProcessIdentity.current]
        ).affectedRows == 1
    }

    /// Records every id of `messageIDs` for `consumer` in one statement, in the transaction
    /// on `db`, and returns those that were new: the rest are duplicates to skip. An id
    /// listed twice is new at most once.
    package static func claim(consumer: String, messageIDs: [UUID], on db: PostgresConnection) async throws -> Set<UUID> {
        let rows = try await db.query(
            """
            INSERT INTO inbox (consumer, message_id, handled_by)
            SELECT $1, id, $3 FROM unnest($2::uuid[]) AS id
            ON CONFLICT DO NOTHING RETURNING message_id
            """, [consumer, messageIDs, ProcessIdentity.current])
        return Set(try rows.map { try $0.decode(UUID.self, "message_id") })
    }

    /// Deletes, at most `batch`, rows processed longer than `age` ago.
    package static func prune(olderThan age: Duration, batch: Int, on db: PostgresConnection) async throws -> Int {
        try await db.query(
            """
            DELETE FROM inbox WHERE (consumer, message_id) IN (
              SELECT consumer, message_id FROM inbox WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2)
            """, [age.secondsWithFraction, batch]
        ).affectedRows
    }
}
