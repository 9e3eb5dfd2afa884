import Logging

/// Reads the workers' heartbeats, the queue counts and the orphaned tasks, judges
/// every worker with ``LivenessRules`` and stores the verdicts in
/// `<prefix>worker_status`, writing only those that changed.
///
/// One refresh costs a fixed handful of pipelined round trips whatever the number of
/// tasks: counts come from the status indexes, throughput from the per-second
/// `stats:` counters, orphans from a server-side script over at most
/// ``orphanScanLimit`` PROCESSING tasks.
///
/// - Important: ``refresh(at:)`` blocks the calling thread on Redis; call it from the
///   main thread or a dedicated one, never from Swift's cooperative pool.
public struct FleetMonitor: Sendable {
    private let store: TaskStore
    private let logger: Logger
    public let namespace: String
    public let topic: String
    /// The consumer group whose lag on ``topic`` the monitor reads.
    public let group: String
    public let rules: LivenessRules
    /// Complete seconds the tasks/s figure averages over.
    public let rateWindowSeconds: Int
    /// How long the stored verdicts outlive this monitor's latest refresh (see
    /// ``verdictLifetime(interval:)``).
    public let verdictLifetime: Duration
    /// PROCESSING tasks (oldest first) looked at for orphans at each refresh. Each costs
    /// Redis about 7 µs (measured with 1,000,000 tasks), so the default keeps a refresh
    /// well under 50 ms; with more tasks in flight the screen says "at least".
    public let orphanScanLimit: Int
    private let lagReader: KafkaLagReader?

    /// Time between two refreshes of `yadtq-monitor` unless `--interval` says otherwise, and
    /// so the span its tasks/s figure averages over (the `rateWindow` it passes).
    public static let defaultInterval: Duration = .seconds(5)

    /// How long stored verdicts are kept after a refresh that runs every `interval`: three
    /// intervals, and at least 15 s, so that a refresh or two delayed by a slow Redis does not
    /// let them lapse, while those of a monitor that stopped go soon after it.
    public static func verdictLifetime(interval: Duration) -> Duration {
        max(interval * 3, .seconds(15))
    }

    /// - Parameters:
    ///   - rateWindow: the span tasks/s averages over, normally the refresh interval
    ///     (rounded up to whole seconds, at most an hour: the counters expire then); the
    ///     stored verdicts are kept for ``verdictLifetime(interval:)`` of it.
    ///   - reconnectFor: how long a refresh keeps retrying while Redis is unreachable.
    public init(
        settings: YADTQSettings, topic: String, rules: LivenessRules, rateWindow: Duration,
        orphanScanLimit: Int = 2_000, logger: Logger, reconnectFor: Duration = .seconds(2), readsLag: Bool = true
    ) {
        lagReader = readsLag ? try? KafkaLagReader(settings: settings, timeout: .seconds(2)) : nil
        store = TaskStore(settings: settings, logger: logger, reconnectFor: reconnectFor)
        namespace = settings.namespace
        self.topic = topic
        group = settings.group
        self.rules = rules
        let milliseconds = max(rateWindow.inMilliseconds, 1)
        rateWindowSeconds = Int(min((milliseconds + 999) / 1000, 3600))
        verdictLifetime = Self.verdictLifetime(interval: rateWindow)
        self.orphanScanLimit = orphanScanLimit
        self.logger = logger
    }

    /// Takes one snapshot at `now` (milliseconds since the epoch) and stores the
    /// verdicts that changed since the last refresh of any monitor. Its duration is
    /// logged at debug level, the figure to watch on a large queue.
    public func refresh(at now: Int64 = currentEpochMilliseconds()) throws -> FleetSnapshot {
        let clock = ContinuousClock()
        let started = clock.now
        defer { logger.debug("refresh took \(clock.now - started)") }
        let currentSecond = now / 1000
        // The second in progress is still counting, so the window ends before it.
        let reads = try store.fleetReads(finishedIn: (1...rateWindowSeconds).map { currentSecond - Int64($0) })

        var workers: [WorkerReport] = []
        var problems: [String] = []
        var unreadable: Set<String> = []
        var forgotten: [String] = []
        for (name, text) in reads.heartbeats.sorted(by: { $0.key < $1.key }) {
            do {
                let heartbeat = try Heartbeat(parsing: text)
                let clock = heartbeat.clock(at: now, redisNow: reads.redisNow)
                if rules.isForgotten(heartbeat, at: clock) {
                    forgotten.append(name)
                    continue
                }
                workers.append(
                    WorkerReport(name: name, heartbeat: heartbeat, judgement: rules.judge(heartbeat, at: clock), clock: clock))
            } catch {
                problems.append("\(name): \(error)")
                unreadable.insert(name)
            }
        }
        if !forgotten.isEmpty {
            try store.forgetWorkers(forgotten)
            logger.info("forgot workers silent for over \(rules.forgetAfter.compactText): \(forgotten.joined(separator: ", "))")
        }
        let stored = reads.verdicts.compactMapValues(WorkerVerdict.init(rawValue:)).filter { !forgotten.contains($0.key) }

        let orphans = try orphans(workers: workers, unreadable: unreadable)
        let changes = verdictChanges(workers: workers, stored: stored, at: now)
        // The changed verdicts are written, those of workers whose heartbeat entry is gone
        // dropped, and the lifetime of them all renewed, in one round trip.
        do {
            let judged = Set(workers.map(\.name))
            try store.storeVerdicts(
                changes.map { ($0.worker, $0.to) }, forgetting: stored.keys.filter { !judged.contains($0) },
                lifetime: verdictLifetime)
        } catch {
            // The snapshot still stands: a full Redis refuses this write but not the reads,
            // and that is when an operator most needs to see the fleet.
            problems.append("verdicts not stored in Redis, so worker_status keeps the earlier ones: \(error)")
        }
        // Not a reason to fail the refresh: the fleet is worth showing without it.
        problems += ((try? store.memory()) ?? []).compactMap(\.warning)
        var snapshot = FleetSnapshot(
            at: now, namespace: namespace, topic: topic, workers: workers, problems: problems,
            counts: try store.counts(), tasksPerSecond: Double(reads.finished) / Double(rateWindowSeconds),
            rateWindowSeconds: rateWindowSeconds, orphaned: orphans.listed, orphanCount: orphans.count,
            orphanScanLimit: orphanScanLimit,
            endOfStream: try store.endOfStream(topic: topic), changes: changes)
        snapshot.lag = readLag()
        snapshot.lagGroup = group
        return snapshot
    }

    /// The group's lag on the topic, or `nil` (logged) when the broker cannot tell.
    private func readLag() -> [PartitionLag]? {
        do {
            return try lagReader?.lag(topic: topic)
        } catch {
            logger.warning("consumer lag not read: \(error)")
            return nil
        }
    }

    /// Counts the PROCESSING tasks whose worker is DEAD or has no heartbeat entry at all, or
    /// whose attempt began before its worker's process started (a worker restarted under its
    /// name: the attempt was its predecessor's), and lists the first ``orphansListed`` of them.
    /// A worker whose entry is unreadable is not judged, so neither are its tasks. Runs inside
    /// Redis: one round trip however many tasks are in flight.
    private func orphans(workers: [WorkerReport], unreadable: Set<String>) throws
        -> (count: Int, listed: [OrphanedTask])
    {
        let running = workers.filter { $0.verdict != .dead }.map { ($0.name, $0.heartbeat.startedAt) }
            + unreadable.map { ($0, Int64(0)) }
        return try store.orphans(running: running, scanLimit: orphanScanLimit, listLimit: Self.orphansListed)
    }

    /// Orphaned tasks listed by id in a snapshot; the rest are only counted.
    static let orphansListed = 100

    /// The workers whose verdict differs from the one stored.
    private func verdictChanges(workers: [WorkerReport], stored: [String: WorkerVerdict], at now: Int64) -> [VerdictChange] {
        workers.compactMap { report in
            stored[report.name] == report.verdict
                ? nil
                : VerdictChange(
                    worker: report.name, from: stored[report.name], to: report.verdict,
                    reason: report.judgement.reason, at: now)
        }
    }
}
