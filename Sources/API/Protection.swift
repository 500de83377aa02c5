import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import Observability
import Synchronization
import Units

/// Token buckets per key: `rate` requests per second on average, bursts up to `burst`.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let rate: Double
    let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    init(rate: Double, burst: Int) {
        self.rate = rate
        self.burst = Double(burst)
    }

    /// Takes a token for `key`; when none is left, returns how many seconds until one is.
    func acquire(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLock { buckets in
            if buckets.count > 100_000 { buckets.removeAll() }  // bounded memory under address churn
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            let elapsed = (now - bucket.updated).secondsWithFraction
            bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
        }
    }
}

/// Answers 429 with `Retry-After` when a client exceeds its rate. Only `/health` is exempt
/// (it does no work); `/ready` is rate limited like everything else.
struct RateLimitMiddleware: RouterMiddleware {
    let limiter: RateLimiter

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        if request.uri.path == "/health" { return try await next(request, context) }
        if let retryAfter = limiter.acquire(context.clientAddress) {
            throw APIError(status: .tooManyRequests, detail: "too many requests; retry after \(retryAfter) s", headers: [.retryAfter: String(retryAfter)])
        }
        return try await next(request, context)
    }
}

/// Security headers, a request id on every response (the client's `X-Request-Id` when it
/// sends a sane one), and CORS for the configured origins only.
struct ResponseHeadersMiddleware: RouterMiddleware {
    static let requestID = HTTPField.Name("X-Request-Id")!
    let allowedOrigins: Set<String>

    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        var context = context
        let incoming = request.headers[Self.requestID].flatMap {
            $0.count <= 128 && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) } ? $0 : nil
        }
        let requestID = incoming ?? context.id
        context.logger[metadataKey: "request.id"] = "\(requestID)"
        let origin = request.headers[.origin].flatMap { allowedOrigins.contains($0) ? $0 : nil }
        var response: Response
        if request.method == .options, origin != nil, request.headers[.accessControlRequestMethod] != nil {
            response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = "GET, POST, PUT, DELETE, OPTIONS"
            response.headers[.accessControlAllowHeaders] = "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id, traceparent"
            response.headers[.accessControlMaxAge] = "600"
        } else {
            response = try await next(request, context)
        }
        response.headers[Self.requestID] = requestID
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        if response.headers[.contentSecurityPolicy] == nil { response.headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'" }
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        if let origin {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlExposeHeaders] = "X-Request-Id, Retry-After, ETag, Location, Idempotent-Replayed"
            response.headers[.vary] = "Origin"
        }
        return response
    }
}

/// One info line per request: method, path (never the query string, which could carry
/// something sensitive), status and duration, with the request id from
/// ``ResponseHeadersMiddleware``. Never headers or bodies: no tokens or passwords.
struct AccessLogMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        let milliseconds = elapsed.secondsWithFraction * 1_000
        context.logger.info(
            "request",
            metadata: [
                "http.method": "\(request.method.rawValue)", "http.path": "\(request.uri.path)",
                "http.status": "\(response.status.code)", "duration_ms": "\(String(format: "%.1f", milliseconds))",
            ])
        return response
    }
}

/// `http_request_duration_seconds{route,method,status}`: the route as registered
/// (`/api/v1/orders/{id}`), never the raw path, so ids do not explode the label set.
struct HTTPMetricsMiddleware: RouterMiddleware {
    func handle(_ request: Request, context: AppRequestContext, next: (Request, AppRequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let route = context.endpointPath ?? "unmatched"
        EmporiumMetrics.record(
            Metrics.Timer(
                label: "http_request_duration_seconds",
                dimensions: [
                    ("route", route), ("method", request.method.rawValue), ("status", String(response.status.code)),
                ]), since: start)
        return response
    }
}
