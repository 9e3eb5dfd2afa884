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
    /// Partitions for the dead-letter topic when the worker has to create it.
    public var deadLetterPartitions = 1

    public init(name: String, topic: String) {
        self.name = name
        self.topic = topic
    }
}

/// A YADTQ worker: consumes task messages in batches, runs each task's Lua plugin,
/// and records every state change in Redis before committing the offsets.
///
/// The rules it keeps (see the README): PROCESSING before an attempt; SUCCESS or,
/// after the last attempt, FAILED plus a copy on `<topic>.dlq`; a terminal status is
/// never overwritten; an offset is committed only when every task before it is
/// terminal in Redis.
public final class Worker: @unchecked Sendable {
    // @unchecked Sendable: the task loop runs on the single thread that calls `run()`;
    // only `stopRequested` (guarded by `lock`) is touched from other threads.
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
    private var watermark = OffsetWatermark()
    private let deadLetterTopic: String
    private let chaosBudget: Int

    public init(settings: YADTQSettings, options: WorkerOptions, logger: Logger) {
        self.settings = settings
        self.options = options
        self.logger = logger
        store = TaskStore(settings: settings, logger: logger, reconnectFor: nil)
        registry = PluginRegistry(directory: settings.pluginsDirectory)
        deadLetterTopic = options.topic + ".dlq"
        chaosBudget = Int.random(in: 3...5)
        metrics = WorkerMetrics(activity: activity)
    }

    /// Asks the worker to stop taking tasks; it finishes the batch in hand, commits
    /// and leaves the group. Safe to call from any thread (a signal handler's queue).
    public func requestStop() {
        lock.withLock { stopRequested = true }
    }

    private var shouldStop: Bool { lock.withLock { stopRequested } }

    /// Why `run()` returned.
    public enum Exit: Sendable, Equatable {
        case endOfStream
        case stopRequested
    }

    /// Runs the worker until an `end` marker has been drained on every partition or
    /// a stop is requested.
    /// - Important: Blocks the calling thread for the worker's whole life; call it
    ///   from the main thread or a dedicated one, never from a Swift task.
    public func run() throws -> Exit {
        try WorkerPreflight.checkPluginFolder(settings.pluginsDirectory)
        guard waitForRedis() else { return .stopRequested }
        _ = registry.refresh()
        announcePlugins()
        let producer = try KafkaProducer(settings: settings, clientID: "yadtq-worker-\(options.name)")
        logger.info("librdkafka \(RDKafkaClient.libraryVersion); brokers \(settings.brokers); Redis \(settings.redis)")
        // Beats from here on, so a worker waiting for its topic shows as such.
        let heartbeat = HeartbeatPublisher(
            settings: settings, worker: options.name, topic: options.topic, activity: activity,
            interval: options.heartbeatInterval, timeLimit: options.limits.timeout, logger: logger)
        heartbeat.start()
        try waitForTopic(producer.client)
        _ = try producer.client.ensureTopic(deadLetterTopic, partitions: options.deadLetterPartitions)
        let consumer = try KafkaConsumer(
            settings: settings, topic: options.topic, clientID: "yadtq-worker-\(options.name)", logger: logger)
        consumer.willRevoke = { [self] partitions in
            carried.removeAll { partitions.contains($0.partition) }
            if batchInFlight {
                // The batch's thread owns the watermark until it is done; see runKeepingMembership.
                revokedDuringBatch.append(contentsOf: partitions)
                return
            }
            commit(consumer, synchronous: true)
            forget(partitions)
        }
        try consumer.subscribe()
        // Rescanned on a thread of its own, so the task loop never waits on the folder.
        let pluginWatcher = PeriodicThread(name: "yadtq-plugins", interval: .seconds(1))
        pluginWatcher.start { [self] in
            if registry.refresh() { announcePlugins() }
        }
        defer { pluginWatcher.stop() }
        let pool = ExecutorPool(
            count: options.concurrency, makeExecutor: { PluginExecutor(registry: registry, limits: options.limits) },
            onStart: { [activity, metrics] job in
                activity.started(job.context.id, at: currentEpochMilliseconds())
                metrics.attemptStarted(job.context.id)
            },
            onFinish: { [self] job, _ in
                activity.finished(job.context.id)
                metrics.attemptFinished(job.context.id, type: job.type)
                chaosTick()
            })
        // Only a marker that completes while this worker runs ends it; one that was
        // already complete belongs to an earlier run.
        let staleMarker = try store.endOfStream(topic: options.topic).flatMap { $0.isComplete ? $0.marker : nil }
        logger.info("worker \(options.name) consuming \(options.topic) in group \(settings.group)")
        var exit = Exit.stopRequested
        var lastEndCheck = ContinuousClock.now
        func runBatch(_ messages: [ConsumedMessage]) throws {
            let batch = UncheckedBox((self, messages, pool, producer))
            try runKeepingMembership(consumer) {
                let (worker, messages, pool, producer) = batch.value
                try worker.process(messages, pool: pool, producer: producer)
            }
            commit(consumer, synchronous: false)
        }
        while !shouldStop {
            var messages = carried
            carried = []
            messages += consumer.poll(
                limit: max(1, options.batchSize - messages.count), timeout: messages.isEmpty ? pollWait() : .zero)
            if !messages.isEmpty {
                // A partition revoked during that poll belongs to its next owner, who redelivers it.
                let owned = Set(consumer.assignedPartitions)
                messages.removeAll { !owned.contains($0.partition) }
            }
            activity.assign(consumer.assignedPartitions)
            metrics.batchTaken(messages.count)
            if !messages.isEmpty || hasDueRetries { try runBatch(messages) }
            let now = ContinuousClock.now
            if messages.isEmpty || now - lastEndCheck >= .milliseconds(500) {
                lastEndCheck = now
                if let end = try store.endOfStream(topic: options.topic), end.isComplete, end.marker != staleMarker {
                    logger.info("every partition has drained up to the end marker; exiting")
                    exit = .endOfStream
                    break
                }
            }
        }
        // Asked to stop: the tasks waiting for a retry are finished first, as a batch in
        // hand is (the next owner would otherwise find them PROCESSING).
        while let due = nextRetryDue {
            Thread.sleep(forTimeInterval: max(0, (due - ContinuousClock.now).inSeconds))
            try runBatch([])
        }
        commit(consumer, synchronous: true)
        activity.markStopped()
        consumer.close()
        heartbeat.stop()
        return exit
    }

    // MARK: - Staying in the group during a long batch
    //
    // librdkafka drops a consumer from its group when the application does not poll for
    // max.poll.interval.ms, and a batch can run longer than that (one long task is enough).
    // So a batch runs on a helper thread while this thread keeps polling with its
    // partitions paused; the few messages such a poll may still return are carried over
    // to the next batch. These three are touched only on the worker's own thread.

    /// Messages polled while a batch was running, for the next batch.
    private var carried: [ConsumedMessage] = []
    /// True while a batch runs on its helper thread (which then owns `watermark`).
    private var batchInFlight = false
    /// Partitions revoked while a batch was running: forgotten once it is done.
    private var revokedDuringBatch: [Int32] = []

    /// Runs `body` (one batch) on a helper thread; if it takes longer than half a second,
    /// pauses the assigned partitions and keeps polling until it is done, then resumes them.
    private func runKeepingMembership(_ consumer: KafkaConsumer, _ body: @escaping @Sendable () throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        let outcome = UncheckedBox<Result<Void, any Error>?>(nil)
        let thread = Thread {
            outcome.value = Result { try body() }
            done.signal()
        }
        thread.name = "yadtq-batch"
        thread.stackSize = 8 << 20
        thread.start()
        if done.wait(timeout: .now() + .milliseconds(500)) == .timedOut {
            batchInFlight = true
            var paused: [Int32] = []
            var revocations = 0
            repeat {
                let assigned = consumer.assignedPartitions
                if assigned != paused || revokedDuringBatch.count != revocations {
                    consumer.pause(assigned)
                    paused = assigned
                    revocations = revokedDuringBatch.count
                }
                let polled = consumer.poll(limit: options.batchSize, timeout: .milliseconds(200))
                carried += polled
                activity.assign(consumer.assignedPartitions)
            } while done.wait(timeout: .now()) == .timedOut
            batchInFlight = false
            consumer.resume(consumer.assignedPartitions)
            if !revokedDuringBatch.isEmpty {
                // Not committed: the next owner redelivers them and finds them terminal.
                forget(revokedDuringBatch)
                revokedDuringBatch = []
            }
        }
        try outcome.value!.get()
    }

    /// Checks Redis (see ``TaskStore/checkServer()``) until it can serve the worker, saying
    /// what is wrong when it starts and every few seconds while it lasts. Returns false when a
    /// stop was requested first, which it notices within a tenth of a second between checks.
    private func waitForRedis() -> Bool {
        var lastProblem = ""
        var lastReport = ContinuousClock.now
        while !shouldStop {
            do {
                let version = try store.checkServer()
                if !lastProblem.isEmpty { logger.notice("Redis at \(settings.redis) is usable again") }
                logger.info("Redis \(version) at \(settings.redis)")
                return true
            } catch {
                let problem = "\(error)"
                if problem != lastProblem || ContinuousClock.now - lastReport >= Self.redisReportInterval {
                    logger.error("cannot start: \(problem) (retrying every second; SIGTERM stops the worker)")
                    lastProblem = problem
                    lastReport = ContinuousClock.now
                }
            }
            for _ in 0..<10 where !shouldStop { Thread.sleep(forTimeInterval: 0.1) }
        }
        return false
    }

    private static let redisReportInterval = Duration.seconds(5)

    private func waitForTopic(_ client: RDKafkaClient) throws {
        var announced = false
        defer { activity.waitingForTopic(nil) }
        while !shouldStop {
            if try client.partitionCount(topic: options.topic) != nil { return }
            if !announced {
                logger.notice("waiting for topic \(options.topic) to exist (yadtq-run creates it)")
                activity.waitingForTopic(options.topic)
                announced = true
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    private func commit(_ consumer: KafkaConsumer, synchronous: Bool) {
        let offsets = watermark.takeCommittable()
        do {
            try consumer.commit(offsets, synchronous: synchronous)
        } catch {
            // Not fatal: the tasks are terminal in Redis, so a redelivery only skips them.
            logger.warning("\(error)")
        }
    }

    /// Logs the plugins and publishes them to Redis for the monitor and the web page.
    private func announcePlugins() {
        do {
            try store.publishPlugins(registry.plugins, worker: options.name)
        } catch {
            logger.warning("could not publish the plugin list: \(error)")
        }
        for plugin in registry.plugins {
            if let error = plugin.loadError {
                logger.error("plugin \(plugin.type): \(error)")
            } else {
                logger.info("plugin \(plugin.type) ready")
            }
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

    private var completedForChaos = 0

    // MARK: - One batch

    /// A consumed message on its way through the batch.
    private struct Item {
        var message: TaskMessage
        var partition: Int32
        var offset: Int64
        /// Why the message is not a runnable task, for poison messages.
        var poison: String?
        var attempt = 0

        var position: MessagePosition { MessagePosition(partition: partition, offset: offset) }
    }

    private struct MessagePosition: Hashable {
        var partition: Int32
        var offset: Int64
    }

    /// A task waiting out a retry backoff, and when it may run again.
    private struct Retry {
        var item: Item
        var due: ContinuousClock.Instant
    }

    /// An end marker read on a partition where a task before it still waits for a retry.
    private struct HeldMarker {
        var marker: String
        var position: MessagePosition
    }

    // A failed attempt's backoff must not hold up the tasks behind it: a task waiting for
    // its retry sits in `backoff` and runs in a later batch, its offset (and any end
    // marker behind it on its partition) left unfinished in the watermark meanwhile, so
    // nothing after it is committed early. Like the watermark, these belong to the
    // batch's thread while a batch runs.

    /// Tasks waiting out a retry backoff.
    private var backoff: [Retry] = []
    /// End markers waiting for the retries before them on their partition.
    private var heldMarkers: [HeldMarker] = []

    /// When the earliest waiting retry is due; `nil` when none waits.
    private var nextRetryDue: ContinuousClock.Instant? { backoff.map(\.due).min() }

    private var hasDueRetries: Bool { nextRetryDue.map { $0 <= ContinuousClock.now } ?? false }

    /// How long an idle poll may wait: until the next retry is due, at most 100 ms.
    private func pollWait() -> Duration {
        guard let next = nextRetryDue else { return .milliseconds(100) }
        return max(.zero, min(.milliseconds(100), next - ContinuousClock.now))
    }

    /// Drops what belongs to revoked partitions: their next owner redelivers it.
    private func forget(_ partitions: [Int32]) {
        watermark.forget(partitions: partitions)
        backoff.removeAll { partitions.contains($0.item.partition) }
        heldMarkers.removeAll { partitions.contains($0.position.partition) }
    }

    /// Runs one attempt of each task in `messages` and of each retry now due, records
    /// the end markers whose partitions have nothing left before them, and marks what is
    /// finished in the watermark.
    private func process(_ messages: [ConsumedMessage], pool: ExecutorPool, producer: KafkaProducer) throws {
        let start = ContinuousClock.now
        var items = backoff.filter { $0.due <= start }.map(\.item)
        backoff.removeAll { $0.due <= start }
        items.reserveCapacity(items.count + messages.count)
        var markers = heldMarkers
        heldMarkers = []
        let now = currentEpochMilliseconds()
        for consumed in messages {
            watermark.track(partition: consumed.partition, offset: consumed.offset)
            do {
                switch try TopicMessage.decode(consumed.value) {
                case .task(let task):
                    items.append(Item(message: task, partition: consumed.partition, offset: consumed.offset))
                case .end(let marker):
                    markers.append(
                        HeldMarker(
                            marker: marker,
                            position: MessagePosition(partition: consumed.partition, offset: consumed.offset)))
                }
            } catch {
                let id = error.id ?? "poison-\(options.topic)-\(consumed.partition)-\(consumed.offset)"
                let preview = String(decoding: consumed.value.prefix(200), as: UTF8.self)
                let message = TaskMessage(id: id, type: "", args: [.string(preview)], maxAttempts: 1, queuedAt: now)
                logger.warning("partition \(consumed.partition) offset \(consumed.offset): \(error.reason)")
                items.append(
                    Item(
                        message: message, partition: consumed.partition, offset: consumed.offset,
                        poison: "undecodable message: \(error.reason)"))
            }
        }
        let retries = items.isEmpty ? [] : try runAttempts(items, pool: pool, producer: producer)
        backoff += retries
        let retried = Set(retries.map(\.item.position))
        for item in items where !retried.contains(item.position) {
            watermark.complete(partition: item.partition, offset: item.offset)
        }
        // The offsets of reached markers are completed now and committed only after this
        // batch, so after their record in Redis.
        let waiting = Set(backoff.map(\.item.partition))
        var reached: [String: [Int32]] = [:]
        for held in markers {
            let position = held.position
            if waiting.contains(position.partition) {
                heldMarkers.append(held)
            } else {
                reached[held.marker, default: []].append(position.partition)
                watermark.complete(partition: position.partition, offset: position.offset)
            }
        }
        for (marker, partitions) in reached {
            try store.recordEndReached(topic: options.topic, marker: marker, partitions: partitions)
            logger.info("partitions \(partitions.sorted()) drained up to the end marker")
        }
    }

    /// Runs one attempt of every item; returns the items to try again, each with the
    /// time its backoff ends.
    private func runAttempts(_ items: [Item], pool: ExecutorPool, producer: KafkaProducer) throws -> [Retry] {
        let decisions = try metrics.timeRedis {
            try store.begin(
                items.map(\.message), partitions: items.map(\.partition), worker: options.name,
                at: currentEpochMilliseconds())
        }
        var outcomes: [AttemptOutcome] = []
        var runnable: [Item] = []
        var deadLetters: [(Item, String)] = []
        for (item, decision) in zip(items, decisions) {
            switch decision {
            case .alreadyTerminal:
                continue
            case .exhausted(let attempts):
                let reason = "all \(attempts) attempts were interrupted before they finished (a worker died while running this task)"
                outcomes.append(AttemptOutcome(id: item.message.id, attempt: attempts, kind: .failed, payload: reason))
                deadLetters.append((item, reason))
            case .run(let attempt):
                var item = item
                item.attempt = attempt
                if let poison = item.poison {
                    outcomes.append(AttemptOutcome(id: item.message.id, attempt: attempt, kind: .failed, payload: poison))
                    deadLetters.append((item, poison))
                } else {
                    runnable.append(item)
                }
            }
        }
        let jobs = runnable.map { item in
            ExecutorPool.Job(
                type: item.message.type, args: item.message.args,
                context: TaskContext(id: item.message.id, attempt: item.attempt, maxAttempts: item.message.maxAttempts))
        }
        var retries: [Retry] = []
        for (item, outcome) in zip(runnable, pool.run(jobs)) {
            switch outcome {
            case .success(let result, let logs, let progress):
                outcomes.append(
                    AttemptOutcome(
                        id: item.message.id, attempt: item.attempt, kind: .success, payload: result.jsonString,
                        logs: logs, progress: progress))
            case .failure(let failure, let logs, let progress):
                let message = ErrorText.trimmed(failure.message)
                let decision = options.retry.decide(
                    attempt: item.attempt, maxAttempts: item.message.maxAttempts, permanent: failure.isPermanent)
                let kind: AttemptOutcome.Kind
                switch decision {
                case .retry(let after):
                    kind = .retry
                    retries.append(Retry(item: item, due: ContinuousClock.now + after))
                case .fail:
                    kind = .failed
                    deadLetters.append((item, message))
                }
                outcomes.append(
                    AttemptOutcome(
                        id: item.message.id, attempt: item.attempt, kind: kind, payload: message, logs: logs,
                        progress: progress))
            }
            metrics.attemptEnded(type: item.message.type, outcome, kind: outcomes[outcomes.count - 1].kind)
        }
        // Poison messages and exhausted tasks (attempt 0: never run here) end FAILED without an attempt.
        for letter in deadLetters where letter.0.poison != nil || letter.0.attempt == 0 {
            metrics.attemptEnded(type: letter.0.message.type, nil, kind: .failed)
        }
        // The dead-letter copy goes out before FAILED is written: should the worker die
        // in between, the task is redelivered and its copy sent again, never lost.
        publishDeadLetters(deadLetters, producer: producer)
        let written = try metrics.timeRedis {
            try store.finish(outcomes, worker: options.name, at: currentEpochMilliseconds())
        }
        var succeeded = 0
        var failed = 0
        for (outcome, wasWritten) in zip(outcomes, written) where wasWritten {
            if outcome.kind == .success { succeeded += 1 }
            if outcome.kind == .failed { failed += 1 }
        }
        activity.count(succeeded: succeeded, failed: failed)
        return retries
    }

    /// Publishes the dead-letter copies (see ``DeadLetterCopy``). A copy the broker refuses
    /// is logged and dropped: the task is FAILED in Redis all the same, and one bad message
    /// must never stop the worker.
    private func publishDeadLetters(_ letters: [(Item, String)], producer: KafkaProducer) {
        guard !letters.isEmpty else { return }
        let now = currentEpochMilliseconds()
        let messages = letters.map { item, reason in
            OutgoingMessage(
                partition: 0, key: Array(item.message.id.utf8.prefix(TaskDeclaration.maximumIDLength)),
                value: DeadLetterCopy.value(
                    of: item.message, error: reason, attempts: item.attempt, worker: options.name, failedAt: now))
        }
        let failures: [Int: String]
        do {
            failures = try producer.produce(topic: deadLetterTopic, messages)
        } catch {
            failures = Dictionary(uniqueKeysWithValues: letters.indices.map { ($0, "\(error)") })
        }
        for (index, reason) in failures.sorted(by: { $0.key < $1.key }) {
            let id = letters[index].0.message.id
            logger.error(
                "task \(id) is FAILED, but its dead-letter copy could not be published to \(deadLetterTopic): \(reason). Its record in Redis keeps the error; check the broker")
        }
    }
}

/// Hands a non-Sendable value to the batch thread, which alone uses it until the
/// worker's thread, waiting on a semaphore, takes it back.
private final class UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
