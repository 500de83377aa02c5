import Hummingbird
import Store

// The stores' records are the API's response bodies: each table's rows are mapped once, in
// its store, and encoded as snake_case JSON by the request context's encoder. These
// conformances let handlers return them directly.
extension CatalogStore.Product: ResponseEncodable {}
extension CatalogStore.Category: ResponseEncodable {}
extension CatalogStore.Review: ResponseEncodable {}
extension CartStore.Line: ResponseEncodable {}
extension OrderStore.Order: ResponseEncodable {}
extension UserStore.User: ResponseEncodable {}
extension UserStore.Address: ResponseEncodable {}
extension PaymentStore.HistoryEntry: ResponseEncodable {}
extension WebhookStore.Endpoint: ResponseEncodable {}
