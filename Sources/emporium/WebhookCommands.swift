import ArgumentParser
import Foundation
import Postgres
import Store

/// `emporium webhooks deliveries`: the merchant webhook delivery log.
struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks", abstract: "Merchant webhook deliveries (DATABASE_URL).", subcommands: [Deliveries.self])

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "List deliveries, newest first: status, attempts, response code, duration and last error. Given-up (FAILED) ones are in the notification worker's dead-letter queue: `emporium dlq replay --queue notification --type webhook.delivery` sends them again."
        )
        @Option(help: "Only this endpoint id.") var endpoint: String?
        @Option(help: "Only this status: PENDING, SENDING, SUCCEEDED or FAILED.") var status: String?
        @Option(help: "At most this many (1-1000).") var limit = 50
        @Flag(help: "JSON output.") var json = false

        func validate() throws {
            if let endpoint, UUID(uuidString: endpoint) == nil { throw ValidationError("--endpoint must be an endpoint id (a UUID)") }
            if let status, !["PENDING", "SENDING", "SUCCEEDED", "FAILED"].contains(status) {
                throw ValidationError("--status must be PENDING, SENDING, SUCCEEDED or FAILED")
            }
            guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be 1 to 1000") }
        }

        func run() async throws {
            var postgres = try PostgresConfiguration.fromEnvironment(ProcessInfo.processInfo.environment)
            postgres.connectTimeout = .seconds(5)
            let pool = PostgresPool(configuration: postgres, maxConnections: 1, acquireTimeout: .seconds(10))
            let found: [WebhookStore.Delivery]
            do {
                found = try await WebhookStore().deliveries(
                    endpointId: endpoint.flatMap(UUID.init(uuidString:)), status: status, size: limit, offset: 0, on: pool
                ).deliveries
            } catch {
                await pool.close()
                throw ValidationError("cannot read deliveries: \(error)")
            }
            await pool.close()
            if json { return try printJSON(found) }
            print("DELIVERY                              ENDPOINT                              EVENT TYPE          STATUS     TRIES CODE  MS     LAST ERROR")
            for delivery in found {
                let columns = [
                    delivery.id.uuidString.lowercased(), delivery.endpointId.uuidString.lowercased(),
                    delivery.eventType.padding(toLength: 19, withPad: " ", startingAt: 0),
                    delivery.status.padding(toLength: 10, withPad: " ", startingAt: 0),
                    String(delivery.attempts).padding(toLength: 5, withPad: " ", startingAt: 0),
                    (delivery.responseCode.map(String.init) ?? "-").padding(toLength: 5, withPad: " ", startingAt: 0),
                    (delivery.durationMs.map(String.init) ?? "-").padding(toLength: 6, withPad: " ", startingAt: 0), delivery.lastError ?? "",
                ]
                print(columns.joined(separator: " "))
            }
            if found.isEmpty { print("no deliveries") }
        }
    }
}
