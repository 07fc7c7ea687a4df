import Synchronization

/// Keeps a client's repeated messages from flooding the log while a broker is away (librdkafka
/// reports every failed reconnect, several a second): the first message of a kind is logged,
/// the same kind within `interval` is counted instead, and the next one logged says how many
/// were left out.
final class LogThrottle: Sendable {
    let interval: Duration
    private let seen = Mutex<[String: (last: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(interval: Duration = .seconds(30)) { self.interval = interval }

    /// Whether to log a message of kind `key` now, and how many of its kind were left out
    /// since the last one logged.
    func admit(_ key: String, now: ContinuousClock.Instant = .now) -> (log: Bool, suppressed: Int) {
        seen.withLock { seen in
            if let entry = seen[key], now - entry.last < interval {
                seen[key] = (entry.last, entry.suppressed + 1)
                return (false, 0)
            }
            let suppressed = seen[key]?.suppressed ?? 0
            seen[key] = (now, 0)
            if seen.count > 256 { seen = seen.filter { now - $0.value.last < interval } }  // kinds are few; stay bounded
            return (true, suppressed)
        }
    }
}
