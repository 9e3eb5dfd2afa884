/// The monitor's judgement of a worker, stored in `<prefix>worker_status`.
public enum WorkerVerdict: String, Sendable, CaseIterable {
    case alive = "ALIVE"
    /// Beating, but one task has run past its time limit: the task loop is blocked.
    case stuck = "STUCK"
    /// Not beating (crashed, frozen or cut off), or stopped gracefully.
    case dead = "DEAD"

}

/// A verdict with the reason an operator needs to act on it.
public struct WorkerJudgement: Sendable, Equatable {
    public var verdict: WorkerVerdict
    /// e.g. `no heartbeat for 12.0s (dead after 10s)`; empty for a plain ALIVE.
    public var reason: String

    public init(_ verdict: WorkerVerdict, reason: String = "") {
        self.verdict = verdict
        self.reason = reason
    }
}

/// The rules that turn a heartbeat into a verdict: a pure function of the heartbeat
/// and the time, so every rule is tested without Redis or a clock.
public struct LivenessRules: Sendable, Equatable {
    /// A worker whose last heartbeat is older than this is DEAD, unless it beats less often
    /// (see ``deadLimit(for:)``).
    public var deadAfter: Duration
    /// A task running longer than this makes its worker STUCK. `nil` (the default)
    /// takes the worker's own limit from its heartbeat: its time limit plus one
    /// heartbeat interval, since the worker itself kills a task at the limit and needs
    /// up to one beat to report it; a task still running after that means the kill
    /// did not happen.
    public var stuckAfter: Duration?
    /// A worker silent (or stopped) for longer than this is dropped from the listing and
    /// its heartbeat and verdict are deleted, so the fleet hashes stay bounded.
    public var forgetAfter: Duration

    public init(deadAfter: Duration = .seconds(10), stuckAfter: Duration? = nil, forgetAfter: Duration = .seconds(3600)) {
        self.deadAfter = deadAfter
        self.stuckAfter = stuckAfter
        self.forgetAfter = forgetAfter
    }

    /// Whether `heartbeat` is old enough at `now` to be forgotten (see ``forgetAfter``).
    public func isForgotten(_ heartbeat: Heartbeat, at now: Int64) -> Bool {
        now - heartbeat.lastHeartbeat > forgetAfter.inMilliseconds
    }

    /// How long `heartbeat`'s current task may run before its worker is STUCK, or `nil`
    /// when neither an override nor the heartbeat says.
    public func stuckLimit(for heartbeat: Heartbeat) -> Duration? {
        if let stuckAfter { return stuckAfter }
        guard let limit = heartbeat.timeLimitMilliseconds else { return nil }
        return .milliseconds(limit + (heartbeat.intervalMilliseconds ?? 0))
    }

    /// How long a worker may be silent before it is DEAD: ``deadAfter``, or twice the worker's
    /// own heartbeat interval when that is longer, so that a worker told to beat less often
    /// than the monitor expects is not DEAD between two beats. `own` says which rule it is.
    public func deadLimit(for heartbeat: Heartbeat) -> (limit: Duration, own: Bool) {
        let own = Duration.milliseconds(heartbeat.intervalMilliseconds ?? 0) * 2
        return own > deadAfter ? (own, true) : (deadAfter, false)
    }

    /// Judges a worker at `now` (milliseconds since the epoch).
    ///
    /// Order matters: a stopped worker is DEAD whatever its age (it said it will not
    /// beat again); a silent worker is DEAD even if its last beat showed a long task,
    /// because a frozen or killed process cannot be unblocked; only a worker that still
    /// beats can be STUCK.
    public func judge(_ heartbeat: Heartbeat, at now: Int64) -> WorkerJudgement {
        if heartbeat.state == .stopped { return WorkerJudgement(.dead, reason: "stopped") }
        // A clock behind the worker's would give a negative age: treat it as fresh.
        let age = Duration.milliseconds(max(0, now - heartbeat.lastHeartbeat))
        let dead = deadLimit(for: heartbeat)
        if age > dead.limit {
            let rule = dead.own ? ": twice its \((dead.limit / 2).compactText) heartbeat interval" : ""
            return WorkerJudgement(
                .dead, reason: "no heartbeat for \(age.compactText) (dead after \(dead.limit.compactText)\(rule))")
        }
        if heartbeat.state == .busy, let startedAt = heartbeat.taskStartedAt, let limit = stuckLimit(for: heartbeat) {
            let running = Duration.milliseconds(max(0, now - startedAt))
            if running > limit {
                return WorkerJudgement(
                    .stuck,
                    reason: "task \(heartbeat.currentTask ?? "?") running for \(running.compactText) "
                        + "(stuck after \(limit.compactText))")
            }
        }
        // A worker waiting for its topic is alive and says what it waits for.
        return WorkerJudgement(.alive, reason: heartbeat.state == .waiting ? heartbeat.note ?? "waiting" : "")
    }
}
