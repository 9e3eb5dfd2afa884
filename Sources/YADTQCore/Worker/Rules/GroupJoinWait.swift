/// Rule: a worker that has joined its consumer group but was never assigned anything (not even
/// an empty share: the group answers every member that completes a rebalance) is waiting for the
/// group, whatever its broker says. That wait is normal for a few seconds (a broker may hold a
/// group's first join for half the session timeout); past ``warnAfter`` it is a problem an
/// operator should see: a member that stopped without leaving holds the group's rebalance until
/// its session times out, and a broker may keep one that left for longer (see the README's
/// Reliability list). Warned once ``warnAfter`` has passed, then once per ``ProblemReport``
/// interval; the end of a warned wait is worth saying too. One value per join: the first
/// assignment, or leaving the group, ends it.
public struct GroupJoinWait: Sendable, Equatable {
    /// The group joined.
    public let group: String
    /// When the worker joined it (subscribed with a new consumer).
    public let since: ContinuousClock.Instant
    public var warnAfter: Duration
    private var report: ProblemReport

    public init(
        group: String, since: ContinuousClock.Instant, warnAfter: Duration = .seconds(30), reportEvery: Duration = .seconds(60)
    ) {
        self.group = group
        self.since = since
        self.warnAfter = warnAfter
        report = ProblemReport(interval: reportEvery)
    }

    /// The group assigned this worker its share (possibly none) at `now`: how long it waited,
    /// when that wait was warned about (to say it is over), else `nil`.
    public mutating func assigned(at now: ContinuousClock.Instant) -> Duration? {
        report.cleared() ? now - since : nil
    }

    /// How long the worker has waited, when that is to be warned about at `now`, else `nil`.
    public mutating func check(at now: ContinuousClock.Instant) -> Duration? {
        guard now - since >= warnAfter, report.shouldReport("unassigned", at: now) else { return nil }
        return now - since
    }
}
