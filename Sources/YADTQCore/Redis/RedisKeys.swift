/// Every Redis key YADTQ reads or writes, built here and nowhere else; the README's key
/// table lists each with its writer and lifetime. Server-side scripts get the names (or,
/// for a family such as `task:<id>`, its prefix) from here in their arguments, so no
/// script spells a key either.
public struct RedisKeys: Sendable {
    /// The namespace with its separator, e.g. `yadtq:`.
    public let prefix: String

    public init(prefix: String) {
        self.prefix = prefix
    }

    // MARK: Tasks (written by the task scripts only)

    /// Hash: one task's record. Expires at its retention once terminal.
    public func task(_ id: String) -> String { taskPrefix + id }
    var taskPrefix: String { prefix + "task:" }
    /// Sorted set: every kept task's id, scored by `queued_at`: the listing, newest first.
    var tasks: String { prefix + "tasks" }
    /// Sorted set: the kept ids of one task type, scored by `queued_at`.
    func type(_ type: String) -> String { typePrefix + type }
    var typePrefix: String { prefix + "type:" }
    /// Sorted set: the ids in one of the listed statuses (PROCESSING, FAILED), by `queued_at`.
    func index(_ status: TaskStatus) -> String { indexPrefix + status.rawValue }
    var indexPrefix: String { prefix + "index:" }
    /// Hash: status -> number of kept tasks in it.
    var counts: String { prefix + "counts" }
    /// Sorted set: terminal tasks (`<status>\0<type>\0<id>`) scored by the time their
    /// retention ends; what the prune step takes out of the indexes and counters.
    var expiry: String { prefix + "expiry" }
    /// Hash: tasks ever finished per terminal status (`SUCCESS`, `FAILED`): monotonic
    /// counters for rates and metrics, unaffected by retention.
    var finished: String { prefix + "finished" }
    /// Hash: tasks finished in one second (`succeeded`, `failed`); expires after an hour.
    func stats(second: Int64) -> String { statsPrefix + String(second) }
    var statsPrefix: String { prefix + "stats:" }

    // MARK: Fleet

    /// Hash: worker name -> its heartbeat JSON, each field written only by that worker.
    public var heartbeats: String { prefix + "all_heartbeats" }
    /// Hash: worker name -> ALIVE | DEAD | STUCK, written only by the monitor.
    public var verdicts: String { prefix + "worker_status" }
    /// Hash: worker name -> the JSON list of plugins it loaded.
    var plugins: String { prefix + "plugins" }
    /// Hash: the latest end marker of a topic (`marker`, `published_at`, `partitions`).
    func end(topic: String) -> String { prefix + "end:" + topic }
    /// Set: the partitions of `topic` drained up to `marker`; expires after 7 days.
    func endReached(topic: String, marker: String) -> String { prefix + "end:" + topic + ":" + marker }

    // MARK: Web

    /// String: a live login session of the web page; expires with the session.
    func webSession(_ id: String) -> String { prefix + "web:session:" + id }
}
