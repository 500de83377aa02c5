import Foundation
import Messaging
import Postgres
import TestSupport
import Testing
import Workers

/// The saga reconciler re-drives orders whose messages were lost mid-saga (here: purged from
/// a work queue by an operator's mistake, so no worker ever sees them).
@Suite("Saga reconciler: lost messages are re-driven", .timeLimit(.minutes(3)))
struct ReconcilerTests {
    /// Short settings so a test sees a stall: `stall` plus one `interval` is the promise.
    static var options: Stack.Options {
        var options = Stack.Options()
        options.saga.stall = .seconds(3)
        options.saga.interval = .seconds(1)
        return options
    }

    /// What the reconciler promises, plus time for the re-driven steps to run.
    static var promise: Duration { options.saga.stall + options.saga.interval + .seconds(8) }

    // The reconciler may re-drive a step before the test purges its queue (the stall is
    // short here): the purge then takes the re-drive too, and the next re-drive, spaced
    // `stall` × 2, still lands within the promise. So the tests purge "at least one".

    /// An order in a cart of its own, placed; returns (product, order, token).
    private func placeOne(_ stack: Stack, quantity: Int = 2, paymentMethod: String = "tok_visa") async throws -> (UUID, UUID, String) {
        let (_, productId, (_, token)) = try await stack.filledCart(stock: 10, quantity: quantity)
        return (productId, try await stack.placeOrder(token, paymentMethod: paymentMethod), token)
    }

    @Test("a payment request purged from the payment queue: the order is re-driven to CONFIRMED within SAGA_STALL_SECONDS plus one sweep, charged once")
    func purgedPaymentRequest() async throws {
        var options = Self.options
        options.excludedRoles = [.payment]
        try await Stack.run(options) { stack in
            let (productId, orderId, _) = try await placeOne(stack)
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.queueDepth(.payment)) ?? 0 >= 1 })
            #expect(try await stack.orderStatus(orderId).status == "AWAITING_PAYMENT")
            #expect(try await stack.purge(.payment) >= 1)
            let payment = try stack.startRole(.payment, options: Self.options)
            #expect(try await stack.awaitTerminal(orderId, timeout: Self.promise).status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [orderId]) == 1)
            #expect(try await stack.count("SELECT count(*) FROM saga_redrives WHERE order_id = $1 AND last_step = 'pay'", [orderId]) == 1)
            #expect(try await stack.stock(productId) == 8)
            await payment.stop()
        }
    }

    @Test("order.placed purged from the stock queue: the order is re-driven, reserved once, and CONFIRMED")
    func purgedPlacement() async throws {
        var options = Self.options
        options.excludedRoles = [.stock]
        try await Stack.run(options) { stack in
            let (productId, orderId, _) = try await placeOne(stack)
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.queueDepth(.stock)) ?? 0 >= 1 })
            #expect(try await stack.purge(.stock) >= 1)
            let stockWorker = try stack.startRole(.stock, options: Self.options)
            #expect(try await stack.awaitTerminal(orderId, timeout: Self.promise).status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1", [orderId]) == 1)
            #expect(await TestEnvironment.eventually { (try? await stack.stock(productId)) == 8 })
            await stockWorker.stop()
        }
    }

    @Test(
        "a re-drive of a step that did happen is harmless: stock.reserved purged, order.placed again finds the reservation and answers without taking stock twice"
    )
    func redriveOfCompletedStep() async throws {
        var options = Self.options
        options.excludedRoles = [.order]
        try await Stack.run(options) { stack in
            let (productId, orderId, _) = try await placeOne(stack)
            // The stock worker reserved and answered; the answer is lost before the order worker.
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.queueDepth(.order)) ?? 0 >= 1 })
            #expect(try await stack.stock(productId) == 8)
            #expect(try await stack.purge(.order) >= 1)
            let orderWorker = try stack.startRole(.order, options: Self.options)
            #expect(try await stack.awaitTerminal(orderId, timeout: Self.promise).status == "CONFIRMED")
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1", [orderId]) == 1)
            #expect(try await stack.stock(productId) == 8)
            #expect(try await stack.count("SELECT count(*) FROM fake_provider_operations WHERE order_id = $1 AND kind = 'charge'", [orderId]) == 1)
            await orderWorker.stop()
        }
    }

    @Test("a cancellation whose release was purged from the stock queue: the reservation is released and the stock is back")
    func purgedRelease() async throws {
        var options = Self.options
        options.excludedRoles = [.stock]
        try await Stack.run(options) { stack in
            var stockWorker = try stack.startRole(.stock, options: Self.options)
            // A manual payment keeps the order waiting with its stock reserved.
            let (productId, orderId, token) = try await placeOne(stack, paymentMethod: "manual")
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.orderStatus(orderId).status) == "AWAITING_PAYMENT" })
            #expect(try await stack.stock(productId) == 8)
            await stockWorker.stop()
            let cancelled = try await stack.request(.post, "/api/v1/orders/\(orderId)/cancel", token: token)
            #expect(cancelled.status == .ok)
            #expect(await TestEnvironment.eventually(timeout: .seconds(30)) { (try? await stack.queueDepth(.stock)) ?? 0 >= 1 })
            #expect(try await stack.purge(.stock) >= 1)
            stockWorker = try stack.startRole(.stock, options: Self.options)
            #expect(await TestEnvironment.eventually(timeout: Self.promise) { (try? await stack.stock(productId)) == 10 })
            #expect(try await stack.count("SELECT count(*) FROM stock_reservations WHERE order_id = $1 AND status = 'RELEASED'", [orderId]) == 1)
            await stockWorker.stop()
        }
    }
}
