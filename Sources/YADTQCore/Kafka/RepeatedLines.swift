/// Rule: a log line that repeats is logged once per `interval`. The first of its kind is
/// logged; the same kind again within the interval is counted and dropped; the first after the
/// interval is logged with how many were dropped, and opens a new interval. Two lines are of
/// one kind when they differ only in their digits: librdkafka repeats "Connect to
/// ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)" with another
/// number of milliseconds each time, for as long as a broker is down.
public struct RepeatedLines: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// Log the line; `dropped` lines of its kind were dropped since it was last logged.
        case log(dropped: Int)
        case drop
    }

    public let interval: Duration
    /// The most kinds remembered: past it those whose interval is over are forgotten, and if
    /// none is, all are, so a stream of lines that never repeat cannot grow it without bound.
    public let capacity: Int
    private var kinds: [String: (loggedAt: ContinuousClock.Instant, dropped: Int)] = [:]

    public init(interval: Duration = .seconds(10), capacity: Int = 256) {
        self.interval = interval
        self.capacity = capacity
    }

    public mutating func admit(_ line: String, at now: ContinuousClock.Instant) -> Verdict {
        let kind = Self.kind(of: line)
        if let seen = kinds[kind], now - seen.loggedAt < interval {
            kinds[kind] = (seen.loggedAt, seen.dropped + 1)
            return .drop
        }
        let dropped = kinds[kind]?.dropped ?? 0
        if kinds[kind] == nil && kinds.count >= capacity {
            kinds = kinds.filter { now - $0.value.loggedAt < interval }
            if kinds.count >= capacity { kinds = [:] }
        }
        kinds[kind] = (now, 0)
        return .log(dropped: dropped)
    }

    /// The line with every run of digits as one `#`.
    static func kind(of line: String) -> String {
        var kind = ""
        var inDigits = false
        for character in line {
            if character.isASCII && character.isNumber {
                if !inDigits { kind.append("#") }
                inDigits = true
            } else {
                kind.append(character)
                inDigits = false
            }
        }
        return kind
    }
}
