/// Rule: a worker that cannot reach Redis keeps trying for at most `limit`; past it the
/// worker gives its partitions up (leaves the group) so the others take over, and joins
/// again once Redis answers. Nothing is committed past what is terminal in Redis meanwhile.
///
/// A refusal that every client meets alike (Redis full, unable to persist, loading, blocked
/// by a script: ``RedisErrorReply/refusesEveryClient``) is waited out without a
/// limit: every other worker would meet it too, so giving the partitions up would only move
/// the wait elsewhere, with a rebalance of the group each time.
///
/// A stopping worker (SIGTERM) still finishes the batch in hand: its attempts have run, and
/// giving their outcomes up would run them again elsewhere (or end a task on its last attempt
/// FAILED as interrupted although it succeeded). So it retries within the same limit, a
/// loading or blocked Redis counting as unreachable; only a refusal that lasts until an
/// operator acts (full, unable to persist) is given up at once, since nothing would end it.
public struct RedisOutage: Sendable, Equatable {
    /// How long Redis may stay unreachable before the worker gives its partitions up.
    public var limit: Duration
    /// When the current run of failures to reach Redis began; `nil` while Redis answers,
    /// even with a refusal every client meets.
    public private(set) var since: ContinuousClock.Instant?

    public init(limit: Duration) {
        self.limit = limit
    }

    public enum Verdict: Sendable, Equatable {
        /// Try the same (replay-safe) call again after `after`.
        case retry(after: Duration)
        /// Redis refuses every client alike: try again after `after`, keeping the partitions.
        case keepWaiting(after: Duration)
        /// Redis has been unreachable for longer than the limit: give the partitions up.
        case giveUp
    }

    /// A Redis call failed at `now`.
    /// - Parameters:
    ///   - refusal: what Redis answered, when it answered (`nil`: it could not be reached).
    ///   - stopping: the worker was asked to stop.
    public mutating func failed(at now: ContinuousClock.Instant, refusal: RedisErrorReply? = nil, stopping: Bool = false)
        -> Verdict
    {
        if let refusal, refusal.refusesEveryClient {
            if stopping && !refusal.isTransient { return .giveUp }
            if !stopping {
                // Redis answered: the time it could not be reached starts over.
                since = nil
                return .keepWaiting(after: Self.retryInterval)
            }
        }
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
