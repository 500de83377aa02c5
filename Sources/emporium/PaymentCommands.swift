import ArgumentParser
import Domain
import Foundation
import Logging
import Messaging
import OperatorTools
import Payments
import Postgres
import Settings
import Store

/// `emporium payments …`: money as the provider sees it.
struct PaymentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payments", abstract: "Reconcile Emporium's payments with the payment provider.", subcommands: [Reconcile.self])

    /// `emporium payments reconcile [--dry-run] [--since 24h]`.
    struct Reconcile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Compare the provider's recent charges with Emporium's payments and repair divergences (PAYMENT_PROVIDER and STRIPE_* as the workers; DATABASE_URL, EMPORIUM_NAMESPACE). A running worker or API publishes the repairs; the payment worker applies them."
        )
        @Flag(help: "Report what diverged; change nothing.") var dryRun = false
        @Option(help: "How far back to compare charges (90, 30s, 5m, 2h, 1d).") var since = "24h"
        @Flag(help: "JSON output.") var json = false

        func validate() throws {
            guard parseDuration(since) != nil else { throw ValidationError("--since must look like 90, 30s, 5m, 2h or 1d") }
        }

        func run() async throws {
            let environment = ProcessInfo.processInfo.environment
            var logger = Logger(label: "emporium.payments")
            logger.logLevel = .error
            let settings = try PaymentSettings.read(EnvironmentReader(environment))
            var postgres = try PostgresConfiguration.fromEnvironment(environment)
            postgres.connectTimeout = .seconds(5)
            let pool = PostgresPool(configuration: postgres, maxConnections: 2, acquireTimeout: .seconds(10), logger: logger)
            let ledger = PostgresPool(configuration: postgres, maxConnections: 1, acquireTimeout: .seconds(10), logger: logger)
            let provider: any PaymentProvider =
                if let stripe = settings.stripe {
                    StripePaymentProvider(client: StripeClient(settings: stripe), captureMode: settings.capture, objects: ProviderObjectStore(pool: ledger))
                } else {
                    FakePaymentProvider(ledger: ledger)
                }
            let reconciler = PaymentReconciler(
                provider: provider, pool: pool, exchange: MessagingNames.fromEnvironment(environment).eventsExchange, logger: logger)
            let report: PaymentReconciler.Report
            do {
                report = try await reconciler.run(since: Date().addingTimeInterval(-(parseDuration(since) ?? .zero).secondsWithFraction), dryRun: dryRun)
            } catch {
                await pool.close()
                await ledger.close()
                throw ValidationError("reconciliation failed: \(error)")
            }
            await pool.close()
            await ledger.close()
            if json {
                try printJSON(
                    Output(
                        provider: provider.name, dryRun: dryRun, compared: report.compared,
                        findings: report.findings.map { .init(kind: $0.kind.rawValue, orderId: $0.orderId, reference: $0.reference, action: $0.action) }))
            } else {
                print(
                    "\(provider.name): compared \(report.compared) charges since \(since) ago; \(report.findings.count) divergences\(dryRun ? " (dry run)" : "")"
                )
                for finding in report.findings { print("  \(finding)") }
            }
        }

        struct Output: Encodable {
            struct Finding: Encodable {
                let kind: String
                let orderId: UUID
                let reference: String?
                let action: String
            }
            let provider: String
            let dryRun: Bool
            let compared: Int
            let findings: [Finding]
        }
    }
}
