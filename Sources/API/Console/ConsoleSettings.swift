import Foundation
import Settings

/// The operator console's settings.
package struct ConsoleSettings: Sendable {
    /// `CONSOLE_ENABLED` (default true): serve the console under `/admin`.
    package var enabled = true
    /// `CONSOLE_SESSION_IDLE_MINUTES` (default 30): a session unused this long ends.
    package var idleExpiry: Duration = .seconds(30 * 60)
    /// `CONSOLE_SESSION_MAX_HOURS` (default 12): a session ends this long after sign-in.
    package var absoluteExpiry: Duration = .seconds(12 * 3_600)
    /// `CONSOLE_SECURE_COOKIE` (`auto` by default: `Secure` when the request came over TLS,
    /// as a trusted proxy's `X-Forwarded-Proto: https` says; `true` always; `false` never).
    package var secureCookie: Bool?
    /// `TRACE_UI_URL`: where a trace id links to, with `{trace_id}` in it (Jaeger:
    /// `http://jaeger:16686/trace/{trace_id}`).
    package var traceURL: String?

    /// Creates the defaults.
    package init() {}

    static func read(_ env: EnvironmentReader) throws -> ConsoleSettings {
        var settings = ConsoleSettings()
        if let value = env.string("CONSOLE_ENABLED") { settings.enabled = value != "false" }
        if let minutes = try env.int("CONSOLE_SESSION_IDLE_MINUTES", in: 1...1_440, unit: "minutes") { settings.idleExpiry = .seconds(minutes * 60) }
        if let hours = try env.int("CONSOLE_SESSION_MAX_HOURS", in: 1...168, unit: "hours") { settings.absoluteExpiry = .seconds(hours * 3_600) }
        switch env.string("CONSOLE_SECURE_COOKIE") {
        case "true": settings.secureCookie = true
        case "false": settings.secureCookie = false
        case nil, "auto": settings.secureCookie = nil
        case let other?: throw ConfigurationError("CONSOLE_SECURE_COOKIE must be auto, true or false, not \(other)")
        }
        if let url = env.string("TRACE_UI_URL") {
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw ConfigurationError("TRACE_UI_URL must be an http(s) URL") }
            settings.traceURL = url
        }
        return settings
    }
}
