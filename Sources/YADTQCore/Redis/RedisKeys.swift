/// Every Redis key YADTQ reads or writes, built here and nowhere else; the README's key
/// table lists each with its writer and lifetime. Server-side scripts get the names (or,
/// for a family such as `bucket:<second>`, its prefix) from here in their arguments, so no
/// script spells a key either.
///
/// Task records are split into shards by a hash of the task id. On a single Redis there is
/// one shard and key names carry no hash tag (`yadtq:records`); on a Redis Cluster there
/// are ``clusterShards``, and every key of shard `n` carries the same hash tag
/// (`yadtq:{17}:records`), so one script call changes any number of a shard's tasks
/// atomically on the one master that holds it. The tags are chosen so the shards' slots
/// spread evenly over the slot space, hence over the masters.
public struct RedisKeys: Sendable {
    /// The namespace with its separator, e.g. `yadtq:`.
    public let prefix: String
    /// How many shards the task records are split into.
    public let shards: Int

    /// Shards on a Redis Cluster: the most masters a namespace's tasks spread over.
    public static let clusterShards = 16

    public init(prefix: String, shards: Int = 1) {
        precondition(shards >= 1 && shards <= 1024, "1 to 1024 shards")
        self.prefix = prefix
        self.shards = shards
        tags = shards == 1 ? [""] : Self.balancedTags(shards).map { "{\($0)}:" }
    }

    /// The keys of one deployment: one shard on a single Redis, ``clusterShards`` on a cluster.
    public init(prefix: String, for url: RedisURL) {
        self.init(prefix: prefix, shards: url.isCluster ? Self.clusterShards : 1)
    }

    private let tags: [String]

    /// The shard that holds task `id`.
    public func shard(of id: String) -> Int {
        shards == 1 ? 0 : Int(HashSlot.crc16(Array(id.utf8))) % shards
    }

    /// For each shard, the smallest number whose hash slot falls in the shard's equal part of
    /// the slot space.
    private static func balancedTags(_ shards: Int) -> [Int] {
        var tags = [Int](repeating: -1, count: shards)
        var found = 0
        var candidate = 0
        while found < shards {
            let slot = HashSlot(key: String(candidate)).value
            let part = slot * shards / HashSlot.count
            if tags[part] < 0 {
                tags[part] = candidate
                found += 1
            }
            candidate += 1
        }
        return tags
    }

    // MARK: Tasks (written by the task scripts only)

    /// Hash holding task `id`'s record (as the field `id`).
    public func records(of id: String) -> String { self[shard(of: id)].records }

    /// The task keys of one shard. Fixed keys are declared in each task script's KEYS; the
    /// families (`bucket:<second>`, ...) are built inside the scripts from the prefixes here.
    public struct Shard: Sendable {
        /// The namespace and the shard's hash tag, e.g. `yadtq:{17}:`.
        let base: String

        /// Hash: task id -> its packed record (see ``TaskRecordCoding``). A field is deleted
        /// by pruning once the task's retention has ended.
        var records: String { base + "records" }
        /// Hash: status -> number of kept tasks in it.
        var counts: String { base + "counts" }
        /// Hash: tasks ever finished per terminal status: monotonic counters for rates and
        /// metrics, unaffected by retention.
        var finished: String { base + "finished" }
        /// Hash: task type -> number of kept tasks of that type.
        var types: String { base + "types" }
        /// Hash: id -> the attempt in flight of every PROCESSING task (attempt, partition,
        /// started_at, worker: see ``TaskScripts/runningEntry``), whose values stand for the
        /// record's; also the in-flight listing, the orphan check and the lost-task look after a
        /// lost log (``TaskScripts/lost``).
        var running: String { base + "running" }
        /// Sorted set: the seconds that have a listing bucket (member and score: the second).
        var buckets: String { base + "buckets" }
        /// List: the ids queued in one second (by `queued_at`), in queueing order: the listing.
        func bucket(second: Int64) -> String { bucketPrefix + String(second) }
        var bucketPrefix: String { base + "bucket:" }
        /// Hash: second -> how many of its bucket's tasks are still kept; the bucket goes with the last.
        var live: String { base + "live" }
        /// Sorted set: the seconds in which some task's retention ends (member and score: the second).
        var expiring: String { base + "expiring" }
        /// List: the ids whose retention ends in one second; emptied by pruning.
        var expiringPrefix: String { base + "expiring:" }
        /// Sorted set: the ids in FAILED or CANCELLED, by `queued_at`.
        func index(_ status: TaskStatus) -> String { indexPrefix + status.rawValue }
        var indexPrefix: String { base + "index:" }
        /// Sorted set: the ids of the SCHEDULED tasks of `topic`, scored by the time they are
        /// due (ms): what that topic's scheduler moves to QUEUED next.
        func scheduled(topic: String) -> String { scheduledPrefix + topic }
        var scheduledPrefix: String { base + "scheduled:" }
        /// Sorted set: the ids of the tasks whose message was sent again after their queueing
        /// (released from SCHEDULED, retried by an operator, published again as lost) or written
        /// late (see ``TaskScripts/queue``), scored by when it was last sent (ms): what the
        /// lost-task check looks at besides the tasks queued since its last look, as their
        /// `queued_at` is older (see ``TaskScripts/lost``). An id leaves when a look finds its
        /// task no longer QUEUED.
        var resent: String { base + "resent" }
        /// Hash: tasks finished in one second (`succeeded`, `failed`); expires after an hour.
        func stats(second: Int64) -> String { statsPrefix + String(second) }
        var statsPrefix: String { base + "stats:" }

        /// String: when a worker last waited for a replica to acknowledge a call on this
        /// shard (ms). Written with each such call so that `WAIT` counts the call's writes
        /// even when a replayed script writes nothing (see ``RedisClient``).
        var replicated: String { base + "replicated" }

        /// KEYS of every task script call, in the order ``TaskScripts`` reads them.
        var scriptKeys: [String] { [records, counts, finished, types, running, buckets, live, expiring, resent] }
        /// The first ARGV of every task script call: the key families' prefixes.
        var scriptPrefixes: [String] { [indexPrefix, statsPrefix, bucketPrefix, expiringPrefix, scheduledPrefix] }
    }

    subscript(shard: Int) -> Shard { Shard(base: prefix + tags[shard]) }

    /// Every shard, in order.
    var allShards: [Shard] { (0..<shards).map { self[$0] } }

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

    // MARK: Scheduler

    /// String: the scheduler's lease for `topic`: the name of the worker running it, expiring
    /// unless that worker renews it (see ``SchedulerLeaseStore``).
    func schedulerLease(topic: String) -> String { prefix + "scheduler:" + topic }
    /// Hash: what the scheduler of `topic` keeps for the next one (``LostTaskRule/Handover``):
    /// partition -> the end offset of that partition it last saw, and `looked_to`, how far its
    /// looks for lost tasks reached; expires a week after its last write (see
    /// ``LostTaskRule/handoverToStore(now:)``).
    func topicEnds(topic: String) -> String { prefix + "ends:" + topic }

    // MARK: Web

    /// String: a live login session of the web page; expires with the session.
    func webSession(_ id: String) -> String { prefix + "web:session:" + id }
}
