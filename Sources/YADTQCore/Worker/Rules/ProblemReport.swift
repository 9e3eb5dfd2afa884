/// Rule: a problem that goes on is reported when it first shows, whenever it changes, and
/// otherwise once per `interval`, so a long wait neither floods the log nor goes quiet.
public struct ProblemReport: Sendable, Equatable {
    public var interval: Duration
    private var last: String?
    private var reportedAt: ContinuousClock.Instant?

    public init(interval: Duration = .seconds(5)) {
        self.interval = interval
    }

    /// Whether to report `problem`, seen at `now`.
    public mutating func shouldReport(_ problem: String, at now: ContinuousClock.Instant) -> Bool {
        if problem == last, let reportedAt, now - reportedAt < interval { return false }
        last = problem
        reportedAt = now
        return true
    }

    /// The problem is over. Whether one was reported, so that its end is worth saying too.
    public mutating func cleared() -> Bool {
        defer {
            last = nil
            reportedAt = nil
        }
        return last != nil
    }
}
