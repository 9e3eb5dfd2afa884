/// Rule: a task PROCESSING under another worker's attempt is taken over only once that
/// attempt is over. When a partition moves in the middle of a batch (a worker joins or
/// leaves the group), the worker that had it still runs the tasks it began and writes their
/// outcomes; a next owner that took them over at once ran each of them a second time, and
/// failed those on their last attempt as interrupted.
///
/// So the other worker's heartbeat decides. The attempt may still run while the heartbeat
/// is fresh (at most two of that worker's intervals old, the monitor's default for DEAD)
/// and not `stopped`, and names the batch that began the attempt (`batch_started_at` equal
/// to the attempt's `started_at`) or none later (it was written before that batch began).
/// It is over when the heartbeat is stale, missing or `stopped`, names a later batch, or no
/// batch while written after the attempt started: a worker that died, or whose batch ended
/// without the task's outcome (cut off from Redis, or a retry it dropped with the partition).
/// The heartbeat's times and the attempt's start come from that worker's clock, and the
/// heartbeat's freshness is its age on Redis's clock, as the monitor judges it: the hosts'
/// clocks need not agree.
///
/// Until then the task waits here, begun again every ``recheck`` (nothing settled: its
/// offset is not committed), and is skipped once the other attempt made it terminal.
public enum AttemptElsewhere {
    /// How long a task running elsewhere waits before it is begun again.
    public static let recheck: Duration = .seconds(2)

    /// The heartbeat interval assumed for a worker that does not publish its own.
    static let defaultInterval: Int64 = 5_000

    /// Whether `attempt` may still be running on its worker, whose stored heartbeat is
    /// `heartbeat` (`nil`: none, or unreadable), at `now` (epoch milliseconds, this worker's
    /// clock), Redis's clock saying `redisNow` when it read the heartbeat (`nil`: not known;
    /// see ``Heartbeat/clock(at:redisNow:)``).
    public static func mayStillRun(_ attempt: RunningAttempt, heartbeat: Heartbeat?, now: Int64, redisNow: Int64? = nil) -> Bool {
        guard let heartbeat, heartbeat.state != .stopped,
            heartbeat.clock(at: now, redisNow: redisNow) - heartbeat.lastHeartbeat
                <= 2 * (heartbeat.intervalMilliseconds ?? defaultInterval)
        else { return false }
        if let batch = heartbeat.batchStartedAt { return batch <= attempt.startedAt }
        return heartbeat.lastHeartbeat <= attempt.startedAt
    }
}
