import ArgumentParser
import Bench
import Foundation
import Messaging
import Operations
import Postgres

/// `emporium bench`: load against a running API (see ``Bench``).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Place orders over HTTP at a constant rate (or closed loop with --max), wait for them to finish, report latencies and throughput.")

    @Option(help: "The API's base URL.") var url = "http://127.0.0.1:8080"
    @Option(help: "Offered orders per second (open loop).") var rate: Double = 50
    @Option(help: "Seconds of load.") var duration: Int = 10
    @Option(help: "Closed loop with this many clients placing orders back to back (finds the peak).") var max: Int?
    @Option(help: "Customers placing orders (one order in flight each).") var customers: Int = 50
    @Option(help: "Lines per order, each a different product.") var lines: Int = 3
    @Option(help: "Bench products the lines are drawn from.") var products: Int = 100
    @Option(help: "Seconds to wait for every order to finish (0: report at once, without waiting).") var settleTimeout: Int = 120
    @Flag(help: "Fill carts over the API (one POST /api/v1/cart/items per line) instead of with SQL, so placement measures a whole purchase.")
    var cartOverAPI = false
    @Flag(help: "JSON output.") var json = false

    func validate() throws {
        guard rate > 0, rate <= 100_000 else { throw ValidationError("--rate must be from 0 to 100000 orders per second") }
        guard (1...3_600).contains(duration) else { throw ValidationError("--duration must be from 1 to 3600 seconds") }
        guard (1...10_000).contains(customers) else { throw ValidationError("--customers must be from 1 to 10000") }
        if let max, !(1...1_000).contains(max) { throw ValidationError("--max must be from 1 to 1000 clients") }
        guard (1...100).contains(lines) else { throw ValidationError("--lines must be from 1 to 100 (a cart's line limit)") }
        guard (lines...10_000).contains(products) else { throw ValidationError("--products must be from --lines to 10000") }
        guard (0...3_600).contains(settleTimeout) else { throw ValidationError("--settle-timeout must be from 0 to 3600 seconds") }
        guard URL(string: url)?.host != nil else { throw ValidationError("--url must be an http(s) URL") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let email = environment["SEED_ADMIN_EMAIL"], let password = environment["SEED_ADMIN_PASSWORD"] else {
            throw CLIError("bench: set SEED_ADMIN_EMAIL and SEED_ADMIN_PASSWORD (an ADMIN account, as `emporium seed` creates) to create the bench product")
        }
        var options = Bench.Options()
        options.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        options.rate = rate
        options.duration = .seconds(duration)
        options.maxConcurrency = max
        options.customers = Swift.max(customers, max ?? 0)
        options.lines = lines
        options.products = products
        options.settleTimeout = .seconds(settleTimeout)
        options.cartOverAPI = cartOverAPI
        options.adminEmail = email
        options.adminPassword = password
        let report: Bench.Report
        do {
            // Named apart from the CLI, so `make bench` can tell the load generator's own
            // database work (cart refills, settle polls) from Emporium's.
            let pool = PostgresPool(configuration: try PostgresConfiguration.fromEnvironment(environment).named("emporium bench"), maxConnections: 8)
            defer { Task { await pool.close() } }
            report = try await Bench(options: options, pool: pool).run { message in
                FileHandle.standardError.write(Data((message + "\n").utf8))
            }
        } catch let failure as Bench.Failure {
            throw CLIError(failure.description)
        }
        if json {
            try printJSON(report)
        } else {
            print(Self.render(report))
        }
    }

    static func render(_ report: Bench.Report) -> String {
        func row(_ name: String, _ p: Bench.Percentiles?) -> String {
            guard let p else { return "\(name)  -" }
            return "\(name)  p50 \(p.p50) ms  p90 \(p.p90) ms  p99 \(p.p99) ms  p99.9 \(p.p999) ms  max \(p.max) ms  (n=\(p.count))"
        }
        var lines = [
            "BENCH  \(report.mode)" + (report.offeredRate.map { ", offered \($0)/s" } ?? "") + (report.concurrency.map { ", \($0) clients" } ?? "")
                + String(format: ", %.1f s", report.durationSeconds)
        ]
        lines.append(
            String(
                format: "placed %d  errors %d  dropped %d  placement %.1f orders/s", report.placed, report.errors, report.dropped, report.placementThroughput)
                + (report.errorsByStatus.isEmpty
                    ? ""
                    : "  (errors by status: " + report.errorsByStatus.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"))
        lines.append(row("placement latency", report.placementLatencyMs))
        lines.append(
            String(
                format: "terminal %d (confirmed %d, cancelled %d), not terminal %d  end-to-end %.1f orders/s",
                report.terminal, report.confirmed, report.cancelled, report.notTerminal, report.endToEndThroughput))
        lines.append(row("placed -> confirmed", report.confirmLatencyMs))
        return lines.joined(separator: "\n")
    }
}
