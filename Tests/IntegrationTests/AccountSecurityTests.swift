import Foundation
import HTTPTypes
import TestSupport
import Testing

@Suite("Account security: refresh rotation, reuse detection, logout", .timeLimit(.minutes(10)))
struct AccountSecurityTests {
    private func login(_ stack: Stack) async throws -> (access: String, refresh: String) {
        let email = "\(TestEnvironment.uniqueName("sess"))@example.com"
        _ = try await stack.request(
            .post, "/api/v1/auth/register", json: ["email": email, "password": "correct horse battery", "first_name": "S", "last_name": "T"])
        let tokens = try await stack.request(.post, "/api/v1/auth/login", json: ["email": email, "password": "correct horse battery"]).json
        return (try #require(tokens["access_token"] as? String), try #require(tokens["refresh_token"] as? String))
    }

    private func refresh(_ stack: Stack, _ token: String) async throws -> Stack.HTTPResult {
        try await stack.request(.post, "/api/v1/auth/refresh", json: ["refresh_token": token])
    }

    @Test("refresh rotates; reusing an old refresh token is 401 and revokes the family; logout revokes")
    func rotation() async throws {
        try await Stack.apiOnly { stack in
            let first = try await login(stack)
            let rotated = try await refresh(stack, first.refresh)
            #expect(rotated.status == .ok)
            let second = try #require(rotated.json["refresh_token"] as? String)
            #expect(second != first.refresh)
            let access = try #require(rotated.json["access_token"] as? String)
            #expect(try await stack.request(.get, "/api/v1/cart", token: access).status == .ok)

            // The old token again: refused, and the family (including `second`) is revoked.
            let reused = try await refresh(stack, first.refresh)
            #expect(reused.status == .unauthorized)
            #expect(reused.headers[.contentType] == "application/problem+json")
            #expect(try await refresh(stack, second).status == .unauthorized)

            // Another session is untouched by that; logout ends it.
            let other = try await login(stack)
            let next = try await refresh(stack, other.refresh)
            #expect(next.status == .ok)
            let current = try #require(next.json["refresh_token"] as? String)
            #expect(try await stack.request(.post, "/api/v1/auth/logout", json: ["refresh_token": current]).status == .noContent)
            #expect(try await refresh(stack, current).status == .unauthorized)
            #expect(try await refresh(stack, "made-up-token").status == .unauthorized)
            // Tokens are stored hashed.
            #expect(try await stack.count("SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", [current]) == 0)
        }
    }
}
