import Logging

/// Reads the workers' heartbeats, the queue counts and the orphaned tasks, judges
/// every worker with ``LivenessRules`` and stores the verdicts in
/// `<prefix>worker_status`, writing only those that changed.
///
/// One refresh costs a fixed handful of pipelined round trips whatever the number of
/// tasks: counts come from the status indexes, throughput from the per-second
/// `stats:` counters, orphans from at most ``orphanScanLimit`` PROCESSING tasks.
///
/// - Important: ``refresh(at:)`` blocks the calling thread on Redis; call it from the
///   main thread or a dedicated one, never from Swift's cooperative pool.
public struct FleetMonitor: Sendable {
    private let store: TaskStore
    public let namespace: String
    public let topic: String
    public let rules: LivenessRules
    /// Complete seconds the tasks/s figure averages over.
    public let rateWindowSeconds: Int
    /// PROCESSING tasks (oldest first) looked at for orphans at each refresh. Only tasks
    /// in flight are PROCESSING, so this bounds the cost without hiding a real orphan
    /// unless a whole fleet's batches are stranded at once.
    public let orphanScanLimit: Int

    /// - Parameters:
    ///   - rateWindow: the span tasks/s averages over, normally the refresh interval
    ///     (rounded up to whole seconds, at most an hour: the counters expire then).
    ///   - reconnectFor: how long a refresh keeps retrying while Redis is unreachable.
    public init(
        settings: YADTQSettings, topic: String, rules: LivenessRules, rateWindow: Duration,
        orphanScanLimit: Int = 10_000, logger: Logger, reconnectFor: Duration = .seconds(2)
    ) {
        store = TaskStore(settings: settings, logger: logger, reconnectFor: reconnectFor)
        namespace = settings.namespace
        self.topic = topic
        self.rules = rules
        let milliseconds = max(rateWindow.inMilliseconds, 1)
        rateWindowSeconds = Int(min((milliseconds + 999) / 1000, 3600))
        self.orphanScanLimit = orphanScanLimit
    }

    /// Takes one snapshot at `now` (milliseconds since the epoch) and stores the
    /// verdicts that changed since the last refresh of any monitor.
    public func refresh(at now: Int64 = currentEpochMilliseconds()) throws -> FleetSnapshot {
        let heartbeatsKey = Heartbeat.hashKey(prefix: store.prefix)
        let verdictsKey = WorkerVerdict.hashKey(prefix: store.prefix)
        let currentSecond = now / 1000
        // The second in progress is still counting, so the window ends before it.
        let seconds = (1...rateWindowSeconds).map { currentSecond - Int64($0) }
        var commands = [
            RedisCommand("HGETALL", heartbeatsKey),
            RedisCommand("HGETALL", verdictsKey),
            RedisCommand("ZRANGE", store.key("index:" + TaskStatus.processing.rawValue), "0", String(orphanScanLimit - 1)),
        ]
        commands += seconds.map { RedisCommand("HMGET", store.key("stats:\($0)"), "succeeded", "failed") }
        let replies = try store.client.execute(commands)
        try Self.checkErrors(replies)

        var workers: [WorkerReport] = []
        var problems: [String] = []
        var unreadable: Set<String> = []
        for (name, text) in Self.pairs(replies[0]).sorted(by: { $0.key < $1.key }) {
            do {
                let heartbeat = try Heartbeat(parsing: text)
                workers.append(WorkerReport(name: name, heartbeat: heartbeat, judgement: rules.judge(heartbeat, at: now)))
            } catch {
                problems.append("\(name): \(error)")
                unreadable.insert(name)
            }
        }
        let stored = Self.pairs(replies[1]).compactMapValues(WorkerVerdict.init(rawValue:))
        let processing = replies[2].elements.compactMap(\.text)
        let finished = replies[3...].reduce(into: 0) { total, reply in
            total += reply.elements.reduce(0) { $0 + Int($1.integer ?? 0) }
        }

        let orphaned = try orphans(among: processing, workers: workers, unreadable: unreadable)
        let changes = try storeChanges(workers: workers, stored: stored, at: now)
        return FleetSnapshot(
            at: now, namespace: namespace, topic: topic, workers: workers, problems: problems,
            counts: try store.counts(), tasksPerSecond: Double(finished) / Double(rateWindowSeconds),
            rateWindowSeconds: rateWindowSeconds, orphaned: orphaned, orphanScanLimit: orphanScanLimit,
            endOfStream: try store.endOfStream(topic: topic), changes: changes)
    }

    /// The PROCESSING tasks whose worker is DEAD or has no heartbeat entry at all (a
    /// worker whose entry is unreadable is not judged, so neither are its tasks).
    private func orphans(among ids: [String], workers: [WorkerReport], unreadable: Set<String>) throws -> [OrphanedTask] {
        guard !ids.isEmpty else { return [] }
        let verdicts = Dictionary(uniqueKeysWithValues: workers.map { ($0.name, $0.verdict) })
        let owners = try store.client.execute(ids.map { RedisCommand("HGET", store.taskKey($0), "worker") })
        return zip(ids, owners).compactMap { id, owner in
            guard let worker = owner.text else { return nil }
            switch verdicts[worker] {
            case .dead: return OrphanedTask(id: id, worker: worker)
            case nil where !unreadable.contains(worker): return OrphanedTask(id: id, worker: worker)
            default: return nil
            }
        }
    }

    /// Writes the verdicts that differ from the stored ones, and drops the verdicts of
    /// workers whose heartbeat entry is gone, in one round trip (none when nothing changed).
    private func storeChanges(workers: [WorkerReport], stored: [String: WorkerVerdict], at now: Int64) throws
        -> [VerdictChange]
    {
        let key = WorkerVerdict.hashKey(prefix: store.prefix)
        let changes = workers.compactMap { report in
            stored[report.name] == report.verdict
                ? nil
                : VerdictChange(
                    worker: report.name, from: stored[report.name], to: report.verdict,
                    reason: report.judgement.reason, at: now)
        }
        let judged = Set(workers.map(\.name))
        let forgotten = stored.keys.filter { !judged.contains($0) }
        var commands: [RedisCommand] = []
        if !changes.isEmpty {
            var command = RedisCommand("HSET", key)
            for change in changes {
                command.append(change.worker)
                command.append(change.to.rawValue)
            }
            commands.append(command)
        }
        if !forgotten.isEmpty { commands.append(RedisCommand(["HDEL", key] + forgotten)) }
        if !commands.isEmpty { try Self.checkErrors(try store.client.execute(commands)) }
        return changes
    }

    /// The field -> value pairs of an `HGETALL` reply.
    private static func pairs(_ reply: RedisReply) -> [String: String] {
        let elements = reply.elements
        var pairs: [String: String] = [:]
        for index in stride(from: 0, to: elements.count - 1, by: 2) {
            if let name = elements[index].text, let value = elements[index + 1].text { pairs[name] = value }
        }
        return pairs
    }

    private static func checkErrors(_ replies: [RedisReply]) throws {
        if let message = replies.lazy.compactMap(\.errorMessage).first {
            throw YADTQError(
                .redis, "Redis refused a monitor read or write", libraryMessage: message,
                remedy: "Check that no other program stores different types under this namespace's keys")
        }
    }
}
