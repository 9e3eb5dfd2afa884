/// Rule: a worker that has joined its consumer group but was never assigned anything (not even
/// an empty share: the group answers every member that completes a rebalance) is waiting for the
/// group, whatever its broker says. That wait is normal for a few seconds (a broker may hold a
/// group's first join for half the session timeout); past ``warnAfter`` it is a problem an
/// operator should see: a member that stopped without leaving holds the group's rebalance until
/// its session times out, and a broker may keep one that left for longer (see the README's
/// Reliability list). Warned once ``warnAfter`` has passed, then once per ``ProblemReport``
/// interval; the end of a warned wait is worth saying too.
public struct GroupJoinWait: Sendable, Equatable {
    public var warnAfter: Duration
    private var since: ContinuousClock.Instant?
    private var report: ProblemReport

    public init(warnAfter: Duration = .seconds(30), reportEvery: Duration = .seconds(60)) {
        self.warnAfter = warnAfter
        report = ProblemReport(interval: reportEvery)
    }

    /// The worker subscribed to its topic with a new consumer at `now`.
    public mutating func joined(at now: ContinuousClock.Instant) {
        since = now
        _ = report.cleared()
    }

    /// The group assigned this worker its share (possibly none). How long it waited, when that
    /// wait was warned about (to say it is over), else `nil`.
    public mutating func assigned(at now: ContinuousClock.Instant) -> Duration? {
        defer { since = nil }
        guard let since, report.cleared() else { return nil }
        return now - since
    }

    /// The worker left the group: it waits for nothing from it.
    public mutating func left() {
        since = nil
        _ = report.cleared()
    }

    /// How long the worker has waited, when that is to be warned about at `now`, else `nil`.
    public mutating func check(at now: ContinuousClock.Instant) -> Duration? {
        guard let since, now - since >= warnAfter, report.shouldReport("unassigned", at: now) else { return nil }
        return now - since
    }
}
