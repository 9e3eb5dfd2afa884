/// One worker as the monitor sees it at one refresh.
public struct WorkerReport: Sendable, Equatable {
    public var name: String
    public var heartbeat: Heartbeat
    public var judgement: WorkerJudgement
    /// The time on the worker's clock when the monitor judged it (see
    /// ``Heartbeat/clock(at:redisNow:)``); `nil`: the snapshot's own time.
    public var clock: Int64?

    public init(name: String, heartbeat: Heartbeat, judgement: WorkerJudgement, clock: Int64? = nil) {
        self.name = name
        self.heartbeat = heartbeat
        self.judgement = judgement
        self.clock = clock
    }

    public var verdict: WorkerVerdict { judgement.verdict }
}

/// A worker's verdict that differs from the one stored in `<prefix>worker_status`.
public struct VerdictChange: Sendable, Equatable {
    public var worker: String
    /// `nil` for a worker the monitor had not judged before.
    public var from: WorkerVerdict?
    public var to: WorkerVerdict
    public var reason: String
    /// Milliseconds since the epoch.
    public var at: Int64

    public init(worker: String, from: WorkerVerdict?, to: WorkerVerdict, reason: String, at: Int64) {
        self.worker = worker
        self.from = from
        self.to = to
        self.reason = reason
        self.at = at
    }
}

/// A task left PROCESSING by a worker judged DEAD (or one with no heartbeat at all):
/// Kafka redelivers it once the group rebalances.
public struct OrphanedTask: Sendable, Equatable {
    public var id: String
    public var worker: String

    public init(id: String, worker: String) {
        self.id = id
        self.worker = worker
    }
}

/// Everything one monitor refresh learned: the fleet, the queue and the stream's end.
public struct FleetSnapshot: Sendable, Equatable {
    /// When the snapshot was taken, in milliseconds since the epoch.
    public var at: Int64
    public var namespace: String
    public var topic: String
    /// Sorted by name.
    public var workers: [WorkerReport]
    /// Heartbeat entries that could not be read, as `worker: reason`.
    public var problems: [String]
    public var counts: [TaskStatus: Int]
    /// Tasks finished per second over the last ``rateWindowSeconds`` complete seconds.
    public var tasksPerSecond: Double
    public var rateWindowSeconds: Int
    /// The first orphaned tasks (up to 100), oldest first.
    public var orphaned: [OrphanedTask]
    /// All orphaned tasks found among the first ``orphanScanLimit`` PROCESSING tasks.
    public var orphanCount: Int
    /// How many PROCESSING tasks were looked at for orphans; more may exist beyond it.
    public var orphanScanLimit: Int
    /// The topic's latest end marker, if one was published.
    public var endOfStream: EndOfStream?
    /// Verdicts that changed at this refresh.
    public var changes: [VerdictChange]
    /// The group's lag on each partition of the topic; `nil` when the broker could not be read.
    public var lag: [PartitionLag]?
    /// The consumer group whose lag ``lag`` is.
    public var lagGroup: String?

    public init(
        at: Int64, namespace: String, topic: String, workers: [WorkerReport], problems: [String] = [],
        counts: [TaskStatus: Int], tasksPerSecond: Double, rateWindowSeconds: Int, orphaned: [OrphanedTask],
        orphanCount: Int, orphanScanLimit: Int, endOfStream: EndOfStream?, changes: [VerdictChange]
    ) {
        self.at = at
        self.namespace = namespace
        self.topic = topic
        self.workers = workers
        self.problems = problems
        self.counts = counts
        self.tasksPerSecond = tasksPerSecond
        self.rateWindowSeconds = rateWindowSeconds
        self.orphaned = orphaned
        self.orphanCount = orphanCount
        self.orphanScanLimit = orphanScanLimit
        self.endOfStream = endOfStream
        self.changes = changes
    }

    /// Whether no worker is running any more: each one is DEAD, which includes
    /// those that stopped gracefully.
    public var everyWorkerGone: Bool { workers.allSatisfy { $0.verdict == .dead } }

    public var totalTasks: Int { counts.values.reduce(0, +) }

    /// Messages not yet committed on all partitions; `nil` when the lag is unknown.
    public var totalLag: Int64? { lag.map { $0.reduce(0) { $0 + $1.lag } } }

    /// The lag summed over `worker`'s partitions; `nil` when the lag is unknown, or when the
    /// worker consumes another topic or in another group (its partition numbers are not those
    /// of the lag read).
    public func lag(of worker: WorkerReport) -> Int64? {
        guard let lag, worker.heartbeat.topic ?? topic == topic, worker.heartbeat.group ?? lagGroup == lagGroup else {
            return nil
        }
        let partitions = Set(worker.heartbeat.partitions)
        return lag.filter { partitions.contains($0.partition) }.reduce(0) { $0 + $1.lag }
    }
}
