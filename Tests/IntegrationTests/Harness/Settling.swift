import Domain
import Foundation
import TestSupport

/// Waits for an outcome instead of sleeping: a message counts as handled when its consumer's
/// inbox row exists, which the worker writes in the same transaction as the effects.
extension Stack {
    /// True once every event written for `orderId` has been published and consumed by each of
    /// `roles` that is bound to its type (nothing of the order's saga is still in flight).
    func awaitSettled(_ orderId: UUID, roles: [WorkerRole] = WorkerRole.allCases, timeout: Duration = .seconds(30)) async -> Bool {
        await TestEnvironment.eventually(timeout: timeout) {
            for role in roles {
                let pending = try? await count(
                    """
                    SELECT count(*) FROM outbox o
                    WHERE o.order_id = $1 AND o.event_type = ANY($2)
                      AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.consumer = $3 AND i.message_id = o.id)
                    """, [orderId, role.consumes.map(\.rawValue), role.rawValue])
                if pending != 0 { return false }
            }
            return true
        }
    }

    /// True once each of `roles` has consumed the message `messageId` (e.g. a duplicate a test
    /// published by hand, which has no outbox row).
    func awaitConsumed(_ messageId: UUID, by roles: [WorkerRole], timeout: Duration = .seconds(30)) async -> Bool {
        await TestEnvironment.eventually(timeout: timeout) {
            (try? await count("SELECT count(*) FROM inbox WHERE message_id = $1 AND consumer = ANY($2)", [messageId, roles.map(\.rawValue)])) == roles.count
        }
    }
}
