import Foundation
import TestSupport

/// The checkout preamble most order tests share, in one place.
extension Stack {
    /// A new ADMIN creates a product with `stock` at `priceCents`, and a new customer puts
    /// `quantity` of it in their cart.
    func filledCart(stock: Int = 10, priceCents: Int = 1_000, quantity: Int = 1) async throws -> (
        admin: String, productId: UUID, customer: (id: UUID, token: String)
    ) {
        let admin = try await admin()
        let productId = try await product(admin, stock: stock, priceCents: priceCents)
        let customer = try await customer()
        try await addToCart(customer.1, productId, quantity: quantity)
        return (admin, productId, (customer.0, customer.1))
    }

    /// ``filledCart(stock:priceCents:quantity:)``, then the customer places the order paying
    /// with `paymentMethod`.
    func purchase(stock: Int = 10, priceCents: Int = 1_000, quantity: Int = 1, paymentMethod: String = "tok_visa") async throws -> (
        admin: String, productId: UUID, customer: (id: UUID, token: String), orderId: UUID
    ) {
        let (admin, productId, customer) = try await filledCart(stock: stock, priceCents: priceCents, quantity: quantity)
        let orderId = try await placeOrder(customer.token, paymentMethod: paymentMethod)
        return (admin, productId, customer, orderId)
    }
}
