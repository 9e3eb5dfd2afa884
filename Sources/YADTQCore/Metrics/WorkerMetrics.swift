import CoreMetrics
import Foundation

/// One worker's own metrics, served on `yadtq-worker --metrics-port`.
///
/// The task loop reports through a few calls (``attemptsEnded(_:)``,
/// ``batchTaken(_:)``, ``timeRedis(_:)``); the partition gauge, the rebalance counter and
/// resident memory are read from ``WorkerActivity`` and the process at each scrape.
public final class WorkerMetrics: Sendable {
    public let registry: MetricsRegistry
    private let activity: WorkerActivity
    private let batchSize: CoreMetrics.Recorder
    private let redisSeconds: CoreMetrics.Timer
    private let rebalances: CounterFromTotal
    private let commitFailures: CoreMetrics.Counter
    private let partitions: CoreMetrics.Gauge
    private let residentMemory: CoreMetrics.Gauge
    private let perType = TypeSeries()
    /// Whether a task type has a plugin file. Other types are counted as `unknown`: a
    /// producer's own invented types must not grow the series without bound.
    private let hasPlugin: @Sendable (String) -> Bool

    /// How an attempt ended, the `outcome` label of `yadtq_worker_tasks_total`.
    public enum Outcome: String, Sendable, CaseIterable {
        case success
        /// Failed, and the task is tried again later.
        case retry
        /// Failed on its last attempt (or for good: unknown type, undecodable message): FAILED.
        case failure
        /// Stopped at the time limit.
        case timeout
        /// Stopped at the memory limit.
        case memory
        /// Stopped while it ran because an operator cancelled the task: CANCELLED.
        case cancelled

        /// How an attempt is counted: by `kind`, what the worker decided, except that an attempt
        /// the sandbox stopped at a limit (``PluginFailure/limit``) counts as `timeout` or `memory`
        /// whatever follows it. The limit is the sandbox's report, not the message: a plugin's own
        /// `error("memory limit reached")` is a plain failure.
        public init(kind: AttemptOutcome.Kind, failure: PluginFailure?) {
            switch (kind, failure?.limit) {
            case (.cancelled, _): self = .cancelled
            case (_, .time?): self = .timeout
            case (_, .memory?): self = .memory
            case (.success, nil): self = .success
            case (.retry, nil): self = .retry
            case (.failed, nil): self = .failure
            }
        }
    }

    public init(activity: WorkerActivity, hasPlugin: @escaping @Sendable (String) -> Bool) {
        registry = MetricsRegistry(
            durationBuckets: [
                "yadtq_worker_task_seconds": [
                    .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
                    .milliseconds(500), .seconds(1), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
                ],
                "yadtq_worker_redis_seconds": [
                    .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                    .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500),
                    .seconds(1),
                ],
            ],
            valueBuckets: ["yadtq_worker_batch_size": [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000]])
        self.activity = activity
        self.hasPlugin = hasPlugin
        batchSize = registry.histogram("yadtq_worker_batch_size")
        redisSeconds = registry.timer("yadtq_worker_redis_seconds")
        rebalances = CounterFromTotal(registry.counter("yadtq_worker_rebalances_total"))
        commitFailures = registry.counter("yadtq_worker_commit_failures_total")
        partitions = registry.gauge("yadtq_worker_partitions")
        residentMemory = registry.gauge("process_resident_memory_bytes")
    }

    /// An attempt that ended, or a task that failed without one, as ``attemptsEnded(_:)`` counts it.
    struct EndedAttempt {
        var type: String
        /// `nil` for a task failed without running (undecodable, or its attempts used up).
        var outcome: PluginOutcome?
        /// What the worker decided.
        var kind: AttemptOutcome.Kind
        /// How long the attempt ran; `nil` when it did not run.
        var duration: Duration?
    }

    /// Counts a batch's attempts (see ``Outcome/init(kind:failure:)``), and times those that ran. A type's
    /// series are looked up once per run of attempts alike, not per attempt: a batch mostly
    /// holds long runs of one type and outcome.
    func attemptsEnded(_ attempts: [EndedAttempt]) {
        var tally: [Series: Int] = [:]
        var run: (series: Series, count: Int)?
        var timer: (type: String, recorder: CoreMetrics.Timer)?
        for attempt in attempts {
            var failure: PluginFailure?
            if case .failure(let reason, _, _) = attempt.outcome { failure = reason }
            let series = Series(type: attempt.type, outcome: Outcome(kind: attempt.kind, failure: failure))
            if let current = run, current.series == series {
                run = (series, current.count + 1)
            } else {
                if let run { tally[run.series, default: 0] += run.count }
                run = (series, 1)
            }
            guard let duration = attempt.duration else { continue }
            if timer?.type != attempt.type {
                timer = (attempt.type, perType.timer(type: typeLabel(attempt.type), in: registry))
            }
            timer?.recorder.recordNanoseconds(duration.nanoseconds)
        }
        if let run { tally[run.series, default: 0] += run.count }
        for (series, count) in tally {
            perType.counter(type: typeLabel(series.type), outcome: series.outcome, in: registry).increment(by: count)
        }
    }

    /// A task type and how its attempts ended: one series of `yadtq_worker_tasks_total`.
    private struct Series: Hashable {
        var type: String
        var outcome: Outcome
    }

    /// The `type` label of a task of `type` (see ``hasPlugin``).
    private func typeLabel(_ type: String) -> String { hasPlugin(type) ? type : "unknown" }

    /// The broker did not take a commit (some or all of its partitions).
    func commitFailed() {
        commitFailures.increment()
    }

    /// Records the size of a batch: its tasks (new messages and retries now due).
    func batchTaken(_ count: Int) {
        if count > 0 { batchSize.record(count) }
    }

    /// Runs one Redis round trip and records its time.
    func timeRedis<T>(_ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { redisSeconds.recordNanoseconds((ContinuousClock.now - start).nanoseconds) }
        return try body()
    }

    /// The exposition text, with the gauges read now.
    public func exposition() -> String {
        let snapshot = activity.snapshot()
        partitions.record(snapshot.partitions.count)
        rebalances.set(Int64(snapshot.assignmentChanges))
        if let bytes = Self.residentMemoryBytes() { residentMemory.record(bytes) }
        return registry.exposition()
    }

    /// The process's resident set size, from `/proc/self/statm` (Linux).
    static func residentMemoryBytes() -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int64(fields[1]) else { return nil }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// The per-type series, made on first use of a type.
private final class TypeSeries: @unchecked Sendable {
    // @unchecked Sendable: both dictionaries are read and written only while holding `lock`.
    private let lock = NSLock()
    private var counters: [String: CoreMetrics.Counter] = [:]
    private var timers: [String: CoreMetrics.Timer] = [:]

    func counter(type: String, outcome: WorkerMetrics.Outcome, in registry: MetricsRegistry) -> CoreMetrics.Counter {
        let key = type + "\u{0}" + outcome.rawValue
        return lock.withLock {
            if let counter = counters[key] { return counter }
            let made = registry.counter("yadtq_worker_tasks_total", [("type", type), ("outcome", outcome.rawValue)])
            counters[key] = made
            return made
        }
    }

    func timer(type: String, in registry: MetricsRegistry) -> CoreMetrics.Timer {
        lock.withLock {
            if let timer = timers[type] { return timer }
            let made = registry.timer("yadtq_worker_task_seconds", [("type", type)])
            timers[type] = made
            return made
        }
    }
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
