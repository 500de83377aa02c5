/// The one place Emporium turns a `Duration` into numbers (settings, SQL intervals, metrics,
/// timeouts of C calls).
extension Duration {
    /// Whole milliseconds (rounded down), as settings and SQL intervals take them.
    public var wholeMilliseconds: Int {
        Int(components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000)
    }

    /// Whole microseconds (rounded down), for latency histograms and `timeval`.
    public var wholeMicroseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }

    /// Whole nanoseconds (rounded down), for timers.
    public var wholeNanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }

    /// Seconds with their fraction, for `make_interval(secs => ...)` and metrics.
    public var secondsWithFraction: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
