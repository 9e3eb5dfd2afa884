import CoreMetrics

/// What one scrape of `yadtq-web`'s `/metrics` read: the queue, the fleet and the lag.
public struct QueueObservation: Sendable {
    /// Kept tasks per status.
    public var counts: [TaskStatus: Int]
    /// Tasks ever finished per terminal status.
    public var finished: [TaskStatus: Int]
    /// Workers per verdict (`ALIVE`, `STUCK`, `DEAD`, ...).
    public var workers: [String: Int]
    /// The group's lag per partition; `nil` when the broker could not be read.
    public var lag: [PartitionLag]?
    /// How long the oldest QUEUED task has waited; 0 when none waits.
    public var oldestQueuedSeconds: Double
    /// How full each Redis master is.
    public var redisMemory: [RedisMemory]

    public init(
        counts: [TaskStatus: Int], finished: [TaskStatus: Int], workers: [String: Int], lag: [PartitionLag]?,
        oldestQueuedSeconds: Double, redisMemory: [RedisMemory]
    ) {
        self.counts = counts
        self.finished = finished
        self.workers = workers
        self.lag = lag
        self.oldestQueuedSeconds = oldestQueuedSeconds
        self.redisMemory = redisMemory
    }
}

/// The queue's metrics as `yadtq-web` serves them: every series is set from Redis and the
/// broker at each scrape, so any number of web servers report the same figures.
public final class QueueMetrics: Sendable {
    public let registry: MetricsRegistry
    private let tasks: GaugeFamily
    private let finished: [TaskStatus: CounterFromTotal]
    private let workers: GaugeFamily
    private let lag: GaugeFamily
    private let oldestQueued: CoreMetrics.Gauge
    private let redisUsed: GaugeFamily
    private let redisLimit: GaugeFamily

    public init() {
        let registry = MetricsRegistry()
        self.registry = registry
        tasks = GaugeFamily(registry, "yadtq_tasks", labels: ["status"])
        finished = Dictionary(
            uniqueKeysWithValues: TaskStatus.allCases.filter(\.isTerminal).map { status in
                (status, CounterFromTotal(registry.counter("yadtq_tasks_finished_total", [("status", status.rawValue)])))
            })
        workers = GaugeFamily(registry, "yadtq_workers", labels: ["verdict"])
        lag = GaugeFamily(registry, "yadtq_consumer_lag", labels: ["topic", "partition"])
        oldestQueued = registry.gauge("yadtq_oldest_queued_seconds")
        redisUsed = GaugeFamily(registry, "yadtq_redis_used_memory_bytes", labels: ["node"])
        redisLimit = GaugeFamily(registry, "yadtq_redis_maxmemory_bytes", labels: ["node"])
    }

    /// Sets every series from `observation` and returns the exposition text. A lag that
    /// could not be read (``QueueObservation/lag`` `nil`: the caller found none under a minute
    /// old) leaves no lag series: a value kept from a broker long silent would read as current.
    public func exposition(of observation: QueueObservation) -> String {
        tasks.set(
            Dictionary(uniqueKeysWithValues: TaskStatus.allCases.map { ([$0.rawValue], Double(observation.counts[$0] ?? 0)) }))
        for (status, counter) in finished { counter.set(Int64(observation.finished[status] ?? 0)) }
        var verdicts = Dictionary(uniqueKeysWithValues: WorkerVerdict.allCases.map { ([$0.rawValue], 0.0) })
        for (verdict, count) in observation.workers { verdicts[[verdict]] = Double(count) }
        workers.set(verdicts)
        lag.set(
            Dictionary(
                uniqueKeysWithValues: (observation.lag ?? []).map { ([$0.topic, String($0.partition)], Double($0.lag)) }))
        oldestQueued.record(observation.oldestQueuedSeconds)
        redisUsed.set(Dictionary(uniqueKeysWithValues: observation.redisMemory.map { ([$0.node.description], Double($0.used)) }))
        redisLimit.set(Dictionary(uniqueKeysWithValues: observation.redisMemory.map { ([$0.node.description], Double($0.limit)) }))
        return registry.exposition()
    }
}
