/// Rule: a worker that cannot write to Redis keeps trying for at most `limit`; past it the
/// worker gives its partitions up (leaves the group) so the others take over, and joins
/// again once Redis answers. Nothing is committed past what is terminal in Redis meanwhile.
public struct RedisOutage: Sendable, Equatable {
    /// How long Redis may fail every write before the worker gives its partitions up.
    public var limit: Duration
    /// When the current run of failures began; `nil` while Redis answers.
    public private(set) var since: ContinuousClock.Instant?

    public init(limit: Duration) {
        self.limit = limit
    }

    public enum Verdict: Sendable, Equatable {
        /// Try the same (replay-safe) call again after `after`.
        case retry(after: Duration)
        /// Redis has been failing for longer than the limit: give the partitions up.
        case giveUp
    }

    /// A Redis call failed at `now`.
    public mutating func failed(at now: ContinuousClock.Instant) -> Verdict {
        let start = since ?? now
        since = start
        if now - start >= limit { return .giveUp }
        return .retry(after: min(Self.retryInterval, limit - (now - start)))
    }

    /// A Redis call succeeded: the outage, if any, is over.
    public mutating func succeeded() {
        since = nil
    }

    /// The pause between two tries of a failing call.
    public static let retryInterval = Duration.milliseconds(500)
}
