import Foundation
import Logging

/// How a worker runs; every field has the default a user gets without flags.
public struct WorkerOptions: Sendable {
    public var name: String
    public var topic: String
    /// Tasks run at once, each in its own Lua state on its own thread.
    public var concurrency: Int = 1
    /// The seed's failure-prone consumer: exit abruptly after a random 3rd to 5th task.
    public var chaos = false
    /// Messages taken from Kafka per batch; statuses are written per batch.
    public var batchSize = 1000
    public var retry = RetryPolicy()
    public var limits = PluginLimits()
    public var heartbeatInterval: Duration = .seconds(5)
    /// How long Redis may stay unreachable before the worker gives its partitions up; a
    /// refusal every worker meets is waited out without a limit (see ``RedisOutage``).
    public var redisOutageLimit: Duration = .seconds(10)
    /// Partitions for the dead-letter topic when the worker has to create it.
    public var deadLetterPartitions = 1
    /// Whether the worker takes part in running the topic's scheduler (one worker at a time
    /// runs it: see ``Scheduler``); `--no-scheduler` turns it off.
    public var scheduler = true

    public init(name: String, topic: String) {
        self.name = name
        self.topic = topic
    }
}

/// A YADTQ worker: consumes task messages in batches, runs each task's Lua plugin, and
/// records every state change in Redis before committing the offsets.
///
/// The rules (see the README's "Task life") live in ``BatchStateMachine`` and the types
/// it uses; this class only performs the machine's actions. Its threads:
/// - the **loop thread**, the one that calls ``run()``: polls Kafka (rebalance callbacks
///   run inside its polls), owns the machine and the consumer, commits offsets;
/// - a **batch thread** per batch: Redis writes, the attempts, dead-letter copies
///   (``BatchRunner``); the loop keeps polling meanwhile, so a long batch does not get the
///   worker thrown out of its group;
/// - `--concurrency` **executor threads** (one Lua state each, ``ExecutorPool``; with 1 the
///   batch thread runs the task itself);
/// - the **heartbeat** thread (``HeartbeatPublisher``), the **plugin watcher**, which
///   rescans the plugin folder every second, and the **cancel watcher** (``CancelWatcher``),
///   which stops the attempts of tasks cancelled while they run;
/// - the **scheduler**'s two threads (``Scheduler``), active on one worker of the topic at a time.
public final class Worker: @unchecked Sendable {
    // @unchecked Sendable: `stopRequested`, `completedForChaos` and `rescansSincePluginList`
    // are guarded by `lock`; everything else is immutable or used by the loop thread only.
    private let settings: YADTQSettings
    private let options: WorkerOptions
    private let logger: Logger
    private let store: TaskStore
    private let registry: PluginRegistry
    public let activity = WorkerActivity()
    /// This worker's own metrics (see `yadtq-worker --metrics-port`).
    public let metrics: WorkerMetrics
    private let lock = NSLock()
    private var stopRequested = false
    private var completedForChaos = 0
    /// Plugin rescans since the plugin list was last written to Redis (see ``run()``).
    private var rescansSincePluginList = 0
    private let chaosBudget: Int

    public init(settings: YADTQSettings, options: WorkerOptions, logger: Logger) {
        self.settings = settings
        self.options = options
        self.logger = logger
        // Each call gives up after a second; BatchRunner retries it up to the outage limit.
        store = TaskStore(settings: settings, logger: logger, reconnectFor: .seconds(1))
        let registry = PluginRegistry(directory: settings.pluginsDirectory)
        self.registry = registry
        chaosBudget = Int.random(in: 3...5)
        metrics = WorkerMetrics(activity: activity, hasPlugin: { registry.info(for: $0) != nil })
    }

    /// Asks the worker to stop taking tasks; it finishes the batch in hand and the retries,
    /// commits and leaves the group (at once when Redis is away). Safe from any thread.
    public func requestStop() {
        lock.withLock { stopRequested = true }
    }

    private var shouldStop: Bool { lock.withLock { stopRequested } }

    /// Why `run()` returned.
    public enum Exit: Sendable, Equatable {
        case endOfStream
        case stopRequested
    }

    /// Runs the worker until an `end` marker has been drained on every partition or a stop
    /// is requested. Every thread it started has ended when it returns or throws.
    /// - Important: Blocks the calling thread for the worker's whole life; call it
    ///   from the main thread or a dedicated one, never from a Swift task.
    public func run() throws -> Exit {
        try WorkerPreflight.checkPluginFolder(settings.pluginsDirectory)
        guard waitForRedis(starting: true) else { return .stopRequested }
        _ = registry.refresh()
        announcePlugins()
        // Beats from here on, so a worker waiting for its topic shows as such.
        let heartbeat = HeartbeatPublisher(
            settings: settings, worker: options.name, topic: options.topic, activity: activity,
            interval: options.heartbeatInterval, timeLimit: options.limits.timeout, logger: logger)
        heartbeat.start()
        defer {
            activity.markStopped()
            heartbeat.stop()
        }
        // Rescanned on a thread of its own, so the task loop never waits on the folder. The
        // list in Redis is written again every few rescans even when nothing changed: a write
        // that failed (Redis away), or a monitor that forgot this worker while it could not
        // beat, leaves it stale for seconds instead of until the next change.
        let pluginWatcher = PeriodicThread(name: "yadtq-plugins", interval: .seconds(1))
        pluginWatcher.start { [self] in
            if registry.refresh() {
                announcePlugins()
            } else if lock.withLock({
                rescansSincePluginList += 1
                return rescansSincePluginList >= Self.pluginListRewriteRescans
            }) {
                publishPluginList()
            }
        }
        defer { pluginWatcher.stop() }
        let producer = try KafkaProducer(settings: settings, clientID: "yadtq-worker-\(options.name)")
        logger.info("librdkafka \(RDKafkaClient.libraryVersion); brokers \(settings.brokers); Redis \(settings.redis)")
        // Before the topic exists: the scheduler is what makes it for a periodic task's first
        // tick, or again after the broker lost it (see ``Scheduler``).
        let scheduler = try startScheduler()
        defer { scheduler?.stop() }
        guard try waitForTopic(producer.client),
            try waitingForBroker({
                try producer.client.ensureTopic(TopicName.deadLetter(of: options.topic), partitions: options.deadLetterPartitions)
            }) != nil
        else { return .stopRequested }
        guard !shouldStop else { return .stopRequested }
        let pool = ExecutorPool(
            count: options.concurrency, makeExecutor: { PluginExecutor(registry: registry, limits: options.limits) },
            onStart: { [activity] job in activity.started(job.context.id, at: currentEpochMilliseconds()) },
            onFinish: { [self] job, _ in
                activity.finished(job.context.id)
                chaosTick()
            })
        defer { pool.close() }
        // Stopped before the pool closes (defers run last first): it raises the pool's flags.
        let cancelWatcher = CancelWatcher(settings: settings, pool: pool, logger: logger)
        cancelWatcher.start()
        defer { cancelWatcher.stop() }
        let runner = BatchRunner(
            store: store, pool: pool, producer: producer, worker: options.name, topic: options.topic,
            deadLetterTopic: TopicName.deadLetter(of: options.topic), deadLetterPartitions: options.deadLetterPartitions,
            outageLimit: options.redisOutageLimit, metrics: metrics,
            activity: activity, logger: logger,
            shouldStop: { [self] in shouldStop })
        // Only a marker that completes while this worker runs ends it; one that was already
        // complete belongs to an earlier run. Read with Redis waited out: a failed read taken
        // for "no marker" would end the worker at once on an earlier run's marker.
        guard
            let staleMarker = waitingForRedis(
                "cannot start", { try store.endOfStream(topic: options.topic).flatMap { $0.isComplete ? $0.marker : nil } })
        else { return .stopRequested }
        let loop = WorkerLoop(worker: self, runner: runner, staleMarker: staleMarker)
        defer { loop.leaveGroup() }
        return try loop.run()
    }

    /// Starts this worker's share of the scheduler, unless `--no-scheduler`.
    private func startScheduler() throws -> Scheduler? {
        guard options.scheduler else { return nil }
        let scheduler = try Scheduler(
            settings: settings, topic: options.topic, worker: options.name, registry: registry, logger: logger)
        scheduler.start()
        return scheduler
    }

    fileprivate func makeConsumer() throws -> KafkaConsumer {
        try KafkaConsumer(
            settings: settings, topic: options.topic, clientID: "yadtq-worker-\(options.name)", logger: logger)
    }

    /// Checks Redis (see ``TaskStore/checkServer()``) until it can serve the worker, saying
    /// what is wrong when it starts and every few seconds while it lasts. Returns false when a
    /// stop was requested first.
    fileprivate func waitForRedis(starting: Bool) -> Bool {
        let what = starting ? "cannot start" : "out of the group until Redis answers"
        guard let server = waitingForRedis(what, { try store.checkServer() }) else { return false }
        logger.info("Redis \(server.version) at \(settings.redis)")
        for warning in server.warnings { logger.warning("\(warning)") }
        return true
    }

    /// Calls `attempt` on Redis until it returns, waiting out every problem (logged as `what`);
    /// `nil` when a stop was requested first.
    private func waitingForRedis<T>(_ what: String, _ attempt: () throws -> T) -> T? {
        // `waiting` never throws, so neither does `retrying`.
        try? retrying(attempt, waiting: { _ in what }, recovered: "Redis at \(settings.redis) is usable again")
    }

    /// Calls `attempt` on the broker until it returns, waiting out a broker that cannot be
    /// reached or does not answer (``BrokerOutage``) as Redis is waited for; any other error is
    /// thrown. `nil` when a stop was requested first. Meanwhile the heartbeat carries the wait
    /// as its note.
    private func waitingForBroker<T>(_ attempt: () throws -> T) throws -> T? {
        defer { activity.waitingForBroker(nil) }
        return try retrying(
            attempt,
            waiting: { error in
                guard BrokerOutage.isWaitable(error) else { throw error }
                activity.waitingForBroker(settings.brokers)
                return WorkerWaits.brokerNote(settings.brokers)
            }, recovered: "the broker at \(settings.brokers) answers again")
    }

    /// Calls `attempt` once a second until it returns; `nil` when a stop was requested first,
    /// which it notices within a tenth of a second between calls. An error goes to `waiting`,
    /// which throws it again when waiting cannot mend it, else names the wait: that is logged
    /// with the error when it starts or changes and every 5 s while it lasts, and `recovered`
    /// once `attempt` returns after it.
    private func retrying<T>(
        _ attempt: () throws -> T, waiting: (any Error) throws -> String, recovered: String
    ) throws -> T? {
        var report = ProblemReport()
        while !shouldStop {
            do {
                let value = try attempt()
                if report.cleared() { logger.notice("\(recovered)") }
                return value
            } catch {
                let what = try waiting(error)
                if report.shouldReport("\(error)", at: .now) {
                    logger.error("\(what): \(error) (retrying every second; SIGTERM stops the worker)")
                }
            }
            for _ in 0..<10 where !shouldStop { Thread.sleep(forTimeInterval: 0.1) }
        }
        return nil
    }

    /// Waits for the topic to exist (made by `yadtq-run`, or by a scheduler: see ``Scheduler``),
    /// and for the broker to answer; false when a stop was requested first.
    private func waitForTopic(_ client: RDKafkaClient) throws -> Bool {
        var announced = false
        defer { activity.waitingForTopic(nil) }
        while !shouldStop {
            // A short read: with no broker answering it lasts its whole timeout, and a stop is
            // only noticed between reads.
            guard let count = try waitingForBroker({ try client.partitionCount(topic: options.topic, timeout: .seconds(2)) })
            else { return false }
            if count != nil { return true }
            if !announced {
                logger.notice("waiting for topic \(options.topic) to exist (yadtq-run creates it)")
                activity.waitingForTopic(options.topic)
                announced = true
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        return false
    }

    /// How many plugin rescans (one a second) the plugin list in Redis is left unwritten at most.
    private static let pluginListRewriteRescans = 10

    /// Logs the plugins and publishes them to Redis for the monitor and the web page.
    private func announcePlugins() {
        publishPluginList()
        for plugin in registry.plugins {
            if let error = plugin.loadError {
                logger.error("plugin \(plugin.type): \(error)")
            } else {
                logger.info("plugin \(plugin.type) ready")
            }
        }
    }

    /// Writes the plugin list to Redis (`yadtq-ctl stats` reads it); a failure is logged, and
    /// the plugin watcher writes it again a few seconds later.
    private func publishPluginList() {
        lock.withLock { rescansSincePluginList = 0 }
        do {
            try store.publishPlugins(registry.plugins, worker: options.name)
        } catch {
            logger.warning("could not publish the plugin list: \(error)")
        }
    }

    private func chaosTick() {
        guard options.chaos else { return }
        let done = lock.withLock {
            completedForChaos += 1
            return completedForChaos
        }
        if done >= chaosBudget {
            FileHandle.standardError.write(Data("chaos: worker \(options.name) exits abruptly after \(done) tasks\n".utf8))
            _exit(3)
        }
    }

    // MARK: - The loop

    /// The loop thread's state: the machine, the consumer, the batch in flight; performs
    /// the machine's actions. Listens to the consumer's rebalances (the consumer holds it
    /// weakly, so no cycle keeps either alive).
    private final class WorkerLoop: KafkaRebalanceListener {
        let worker: Worker
        let runner: BatchRunner
        /// The end marker complete when the worker started (an earlier run's), which ends nothing.
        let staleMarker: String?
        var machine: BatchStateMachine
        var consumer: KafkaConsumer?
        var batch: BatchThread?
        var exit = Exit.stopRequested
        var done = false
        /// Commit failures are logged once per kind of failure per 10 s: with a broker away,
        /// every commit fails.
        var commitProblems = ProblemReport(interval: .seconds(10))
        var logger: Logger { worker.logger }

        init(worker: Worker, runner: BatchRunner, staleMarker: String?) {
            self.worker = worker
            self.runner = runner
            self.staleMarker = staleMarker
            let options = worker.options
            machine = BatchStateMachine(
                configuration: .init(topic: options.topic, batchSize: options.batchSize, retry: options.retry))
        }

        func run() throws -> Exit {
            try joinGroup()
            logger.info("worker \(worker.options.name) consuming \(worker.options.topic) in group \(worker.settings.group)")
            var lastEndCheck = ContinuousClock.now
            var stopping = false
            while !done {
                if !stopping && worker.shouldStop {
                    stopping = true
                    try perform(machine.stopRequested(now: .now))
                    continue
                }
                if machine.membership == .cutOff {
                    // Out of the group until Redis answers (or a stop is asked for).
                    if worker.waitForRedis(starting: false) { try perform(machine.redisReachable()) }
                    continue
                }
                try step()
                let now = ContinuousClock.now
                if !stopping, !machine.batchInFlight, now - lastEndCheck >= .milliseconds(500) {
                    lastEndCheck = now
                    if let end = try? worker.store.endOfStream(topic: worker.options.topic), end.isComplete,
                        end.marker != staleMarker
                    {
                        logger.info("every partition has drained up to the end marker; exiting")
                        exit = .endOfStream
                        stopping = true
                        try perform(machine.stopRequested(now: now))
                    }
                }
            }
            return exit
        }

        /// One poll, and what follows from it.
        private func step() throws {
            guard let consumer else { return }
            if let batch {
                // The loop polls between short waits for the batch: that serves the group
                // (rebalances, max.poll.interval.ms) and prefetches the next batch.
                let outcome = batch.outcome(waiting: .milliseconds(20))
                if outcome == nil {
                    try perform(machine.polled(consumer.poll(limit: machine.pollLimit, timeout: .zero), now: .now))
                }
                if let outcome {
                    self.batch = nil
                    switch outcome {
                    case .success(let result):
                        worker.activity.count(succeeded: result.succeeded, failed: result.failed, cancelled: result.cancelled)
                        try perform(machine.batchFinished(result, now: .now))
                    case .failure(let abandoned):
                        logger.error("giving partitions \(machine.assigned.sorted()) up: cannot write to Redis (\(abandoned))")
                        try perform(machine.batchAbandoned())
                    }
                } else {
                    try perform(machine.batchStillRunning(now: .now))
                }
            } else {
                let now = ContinuousClock.now
                let messages = consumer.poll(limit: machine.pollLimit, timeout: machine.pollWait(now: now))
                try perform(machine.polled(messages, now: .now, epochMilliseconds: currentEpochMilliseconds()))
            }
            worker.activity.assign(consumer.assignedPartitions)
            if let waited = worker.activity.groupWaitToWarn() {
                logger.warning(
                    "group \(worker.settings.group) has assigned this worker no partitions for \(waited.compactText): the broker answers, but the group's rebalance has not completed. A member that stopped without leaving holds it until its session times out (YADTQ_KAFKA_SESSION_TIMEOUT_MS); if this goes on, YADTQ_KAFKA_DEBUG=cgrp with --log-level debug logs the broker's answers to the join")
            }
        }

        func perform(_ actions: [BatchStateMachine.Action]) throws {
            for action in actions {
                switch action {
                case .startBatch(let work):
                    // Counted here, not at the poll: the messages polled while a batch runs
                    // wait for the next one.
                    worker.metrics.batchTaken(work.tasks.count)
                    batch = BatchThread(runner: runner, batch: work)
                case .pause(let partitions):
                    consumer?.pause(partitions)
                case .resume(let partitions):
                    consumer?.resume(partitions)
                case .commit(let offsets, let synchronous):
                    do {
                        try consumer?.commit(offsets, synchronous: synchronous)
                    } catch {
                        // Not fatal: the tasks are terminal in Redis, so a redelivery only skips them.
                        logger.warning("\(error)")
                    }
                case .leaveGroup:
                    leaveGroup()
                case .joinGroup:
                    try joinGroup()
                case .exit:
                    done = true
                }
            }
        }

        private func joinGroup() throws {
            let consumer = try worker.makeConsumer()
            consumer.listener = self
            try consumer.subscribe()
            self.consumer = consumer
            worker.activity.joinedGroup(worker.settings.group)
        }

        /// Leaves the group (idempotent); the consumer is freed.
        func leaveGroup() {
            guard let consumer else { return }
            if let batch {
                // Thrown out mid-batch (an error): the batch's thread is seen through first.
                batch.waitForOutcome()
                self.batch = nil
            }
            consumer.close()
            self.consumer = nil
            worker.activity.assign([])
            worker.activity.leftGroup()
        }

        func consumer(_ consumer: KafkaConsumer, didAssign partitions: [Int32]) {
            // Called for every rebalance this member completes, with an empty list when its share
            // is none: the first one ends the wait for the group.
            if let waited = worker.activity.groupAssigned() {
                logger.notice("group \(worker.settings.group) assigned partitions \(partitions) after \(waited.compactText)")
            }
            try? perform(machine.partitionsAssigned(partitions))
        }

        func consumer(_ consumer: KafkaConsumer, willRevoke partitions: [Int32], lost: Bool) {
            // Only commits come back here, never a join or a leave.
            try? perform(machine.partitionsRevoked(partitions, lost: lost))
        }

        func consumer(_ consumer: KafkaConsumer, commitFailed partitions: [Int32], error: YADTQError) {
            worker.metrics.commitFailed()
            let now = ContinuousClock.now
            machine.commitFailed(now: now)
            if commitProblems.shouldReport("\(error.libraryCode ?? 0)", at: now) {
                logger.warning("\(error); sending the offsets again in \(machine.configuration.commitRetryDelay) (the tasks are terminal in Redis: a redelivery would only skip them)")
            }
        }
    }
}

/// One batch running on a thread of its own while the loop keeps polling.
private final class BatchThread: @unchecked Sendable {
    // @unchecked Sendable: `result` is written by the batch thread before it signals `done`
    // and read by the loop thread only after `done` was signalled.
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<BatchResult, BatchRunner.Abandoned>?
    private var collected = false

    init(runner: BatchRunner, batch: TaskBatch) {
        let thread = Thread { [self] in
            nameCurrentThread("yadtq-batch")
            result = Result { () throws(BatchRunner.Abandoned) in try runner.run(batch) }
            done.signal()
        }
        thread.name = "yadtq-batch"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// The outcome once the batch is done (waiting for it at most `waiting`), else `nil`.
    func outcome(waiting: Duration) -> Result<BatchResult, BatchRunner.Abandoned>? {
        if !collected {
            guard done.wait(timeout: .now() + .milliseconds(Int(waiting.inMilliseconds))) == .success else { return nil }
            collected = true
        }
        return result
    }

    func waitForOutcome() {
        if !collected {
            done.wait()
            collected = true
        }
    }
}
