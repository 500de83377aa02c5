import Foundation
import Hummingbird

/// `page` (from 1) and `page_size` (1–100, default 20) from the query string.
struct Page: Sendable {
    static let maxSize = 100
    let number: Int
    let size: Int
    var offset: Int { (number - 1) * size }

    init(_ request: Request) throws {
        let query = request.uri.queryParameters
        let number = query["page"].map { Int(String($0)) } ?? 1
        let size = query["page_size"].map { Int(String($0)) } ?? 20
        guard let number, number >= 1, number <= 100_000 else { throw APIError.badRequest("page must be a number from 1", errors: [.init(field: "page", message: "must be a positive number")]) }
        guard let size, (1...Self.maxSize).contains(size) else { throw APIError.badRequest("page_size must be from 1 to \(Self.maxSize)", errors: [.init(field: "page_size", message: "must be from 1 to \(Self.maxSize)")]) }
        self.number = number
        self.size = size
    }
}

/// A page of items with its position.
struct PageBody<Item: Encodable & Sendable>: ResponseEncodable, Sendable {
    let items: [Item]
    let page: Int
    let pageSize: Int
    let total: Int
}

extension Parameters {
    /// A path parameter that must be a UUID; anything else is a 404 (the resource cannot exist).
    func requireUUID(_ name: String, _ what: String) throws -> UUID {
        guard let text = get(name), let id = UUID(uuidString: text) else { throw APIError.notFound(what) }
        return id
    }
}
