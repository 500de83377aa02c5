import Foundation
import Hummingbird

/// `page` (from 1) and `page_size` (1–100, default 20) from the query string.
struct Page: Sendable {
    static let maxSize = 100
    let number: Int
    let size: Int
    var offset: Int { (number - 1) * size }

    init(_ request: Request) throws {
        let number = try request.singleQueryValue("page").map { Int($0) } ?? 1
        let size = try request.singleQueryValue("page_size").map { Int($0) } ?? 20
        guard let number, number >= 1, number <= 100_000 else {
            throw APIError.badRequest("page must be a number from 1", errors: [.init(field: "page", message: "must be a positive number")])
        }
        guard let size, (1...Self.maxSize).contains(size) else {
            throw APIError.badRequest(
                "page_size must be from 1 to \(Self.maxSize)", errors: [.init(field: "page_size", message: "must be from 1 to \(Self.maxSize)")])
        }
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

extension Request {
    /// The one value of query parameter `name`, nil when absent; a repeated parameter is a 400
    /// (which of the values was meant is not ours to guess).
    func singleQueryValue(_ name: String) throws -> String? {
        let values = uri.queryParameters.getAll(name)
        guard values.count <= 1 else {
            throw APIError.badRequest("\(name) is given more than once", errors: [.init(field: name, message: "give it once")])
        }
        return values.first
    }
}

extension Parameters {
    /// A path parameter that must be a UUID; anything else is a 404 (the resource cannot exist).
    func requireUUID(_ name: String, _ what: String) throws -> UUID {
        guard let text = get(name), let id = UUID(uuidString: text) else { throw APIError.notFound(what) }
        return id
    }
}
