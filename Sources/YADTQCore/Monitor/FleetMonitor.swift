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
    public let rules: LivenessRules
    /// Complete seconds the tasks/s figure averages over.
    public let rateWindowSeconds: Int
    /// PROCESSING tasks (oldest first) looked at for orphans at each refresh. Each costs
    /// Redis about 7 µs (measured with 1,000,000 tasks), so the default keeps a refresh
    /// well under 50 ms; with more tasks in flight the screen says "at least".
    public let orphanScanLimit: Int

    /// - Parameters:
    ///   - rateWindow: the span tasks/s averages over, normally the refresh interval
    ///     (rounded up to whole seconds, at most an hour: the counters expire then).
    ///   - reconnectFor: how long a refresh keeps retrying while Redis is unreachable.
    public init(
        settings: YADTQSettings, topic: String, rules: LivenessRules, rateWindow: Duration,
        orphanScanLimit: Int = 2_000, logger: Logger, reconnectFor: Duration = .seconds(2)
    ) {
        store = TaskStore(settings: settings, logger: logger, reconnectFor: reconnectFor)
        namespace = settings.namespace
        self.topic = topic
        self.rules = rules
        let milliseconds = max(rateWindow.inMilliseconds, 1)
        rateWindowSeconds = Int(min((milliseconds + 999) / 1000, 3600))
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
        let heartbeatsKey = Heartbeat.hashKey(prefix: store.prefix)
        let verdictsKey = WorkerVerdict.hashKey(prefix: store.prefix)
        let currentSecond = now / 1000
        // The second in progress is still counting, so the window ends before it.
        let seconds = (1...rateWindowSeconds).map { currentSecond - Int64($0) }
        var commands = [RedisCommand("HGETALL", heartbeatsKey), RedisCommand("HGETALL", verdictsKey)]
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
        let finished = replies[2...].reduce(into: 0) { total, reply in
            total += reply.elements.reduce(0) { $0 + Int($1.integer ?? 0) }
        }

        let orphans = try orphans(workers: workers, unreadable: unreadable)
        let changes = try storeChanges(workers: workers, stored: stored, at: now)
        return FleetSnapshot(
            at: now, namespace: namespace, topic: topic, workers: workers, problems: problems,
            counts: try store.counts(), tasksPerSecond: Double(finished) / Double(rateWindowSeconds),
            rateWindowSeconds: rateWindowSeconds, orphaned: orphans.listed, orphanCount: orphans.count,
            orphanScanLimit: orphanScanLimit,
            endOfStream: try store.endOfStream(topic: topic), changes: changes)
    }

    /// Counts the PROCESSING tasks whose worker is DEAD or has no heartbeat entry at all,
    /// and lists the first ``orphansListed`` of them. A worker whose entry is unreadable is
    /// not judged, so neither are its tasks. Runs inside Redis: one round trip however
    /// many tasks are in flight.
    private func orphans(workers: [WorkerReport], unreadable: Set<String>) throws
        -> (count: Int, listed: [OrphanedTask])
    {
        var arguments = RedisCommand(store.prefix, String(orphanScanLimit), String(Self.orphansListed))
        for worker in workers where worker.verdict != .dead { arguments.append(worker.name) }
        for name in unreadable { arguments.append(name) }
        let reply = try store.client.evaluate(Self.orphanScript, arguments: arguments).elements
        let listed = stride(from: 1, to: reply.count - 1, by: 2).compactMap { index in
            reply[index].text.flatMap { id in reply[index + 1].text.map { OrphanedTask(id: id, worker: $0) } }
        }
        return (Int(reply.first?.integer ?? 0), listed)
    }

    /// Orphaned tasks listed by id in a snapshot; the rest are only counted.
    static let orphansListed = 100

    /// ARGV: prefix, scan limit, list limit, then the names of the workers still running.
    /// Returns the orphan count, then id and worker of the first orphans.
    private static let orphanScript = RedisScript(
        name: "monitor_orphans",
        source: """
            local p, limit, listed = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
            local running = {}
            for i = 4, #ARGV do running[ARGV[i]] = true end
            local out = {0}
            for _, id in ipairs(redis.call('ZRANGE', p .. 'index:PROCESSING', 0, limit - 1)) do
              local worker = redis.call('HGET', p .. 'task:' .. id, 'worker')
              if worker and not running[worker] then
                out[1] = out[1] + 1
                if out[1] <= listed then
                  out[#out + 1] = id
                  out[#out + 1] = worker
                end
              end
            end
            return out
            """)

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
