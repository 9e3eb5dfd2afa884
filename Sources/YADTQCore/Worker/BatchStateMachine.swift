/// The worker's rules as a state machine: what it holds per partition (the offset
/// watermark, tasks waiting out a retry, end markers held behind them), whether it is in
/// its group, and the batch in flight. Every event returns the actions the worker must
/// perform, in order; the machine itself reads no clock and touches neither Kafka nor
/// Redis, so every rule and every interleaving is unit-tested (postgres-nio style).
///
/// - Important: A value type owned by the worker's loop thread. The batch in flight runs
///   as a ``TaskBatch`` on its own thread and comes back through ``batchFinished(_:now:)``.
public struct BatchStateMachine: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Used to name poison messages that carry no id.
        public var topic: String
        /// Messages taken per batch.
        public var batchSize: Int
        public var retry: RetryPolicy
        /// A batch running longer than this pauses its partitions while the loop keeps
        /// polling, so the worker stays in its group (max.poll.interval.ms).
        public var pauseAfter: Duration
        /// The longest an idle poll waits.
        public var idlePoll: Duration
        /// How often the statuses of awaited tasks are read (``AwaitedTasks``).
        public var statusCheckInterval: Duration
        /// How often every partition's committed offset is sent again (see ``recommitIfDue(now:)``).
        public var recommitInterval: Duration
        /// How soon they are sent again after the broker did not take a commit (see
        /// ``commitFailed(now:)``).
        public var commitRetryDelay: Duration

        public init(
            topic: String, batchSize: Int = 1000, retry: RetryPolicy = RetryPolicy(),
            pauseAfter: Duration = .milliseconds(500), idlePoll: Duration = .milliseconds(100),
            statusCheckInterval: Duration = .seconds(2), recommitInterval: Duration = .seconds(10),
            commitRetryDelay: Duration = .seconds(1)
        ) {
            self.topic = topic
            self.batchSize = batchSize
            self.retry = retry
            self.pauseAfter = pauseAfter
            self.idlePoll = idlePoll
            self.statusCheckInterval = statusCheckInterval
            self.recommitInterval = recommitInterval
            self.commitRetryDelay = commitRetryDelay
        }
    }

    public enum Action: Sendable, Equatable {
        /// Run this batch on the batch thread; report with ``batchFinished(_:now:)`` or
        /// ``batchAbandoned()``.
        case startBatch(TaskBatch)
        /// Stop fetching from these partitions (polls still serve the group), or start again.
        case pause([Int32])
        case resume([Int32])
        /// Commit these next-offsets-to-read. Synchronous before partitions leave: the answer
        /// is waited for, a few seconds at most (``KafkaConsumer/commit(_:synchronous:)``).
        case commit([Int32: Int64], synchronous: Bool)
        /// Leave the consumer group (its partitions go to the others).
        case leaveGroup
        /// Join the consumer group again.
        case joinGroup
        /// The worker is done: return from its loop.
        case exit
    }

    /// Whether the worker is in its group.
    public enum Membership: Sendable, Equatable {
        case member
        /// Left the group because Redis could not be written (``RedisOutage``); joins again
        /// on ``redisReachable()``.
        case cutOff
        /// Asked to stop: finishes the batch in hand and the retries, commits, leaves.
        case stopping
        case gone
    }

    private struct InFlight: Sendable {
        var startedAt: ContinuousClock.Instant
        /// Partitions revoked while the batch ran: whatever it settles there is dropped.
        var revoked: Set<Int32> = []
        var paused: [Int32] = []
        /// Whether the batch reads the statuses of awaited tasks.
        var checksStatuses = false
    }

    public let configuration: Configuration
    public private(set) var membership = Membership.member
    private var watermark = OffsetWatermark()
    private var waiting: [TaskBatch.WaitingRetry] = []
    private var held: [EndMarker] = []
    private var awaited: AwaitedTasks
    /// When every partition's committed offset is next sent again; `nil` before the first commit.
    private var nextRecommit: ContinuousClock.Instant?
    /// Messages polled while a batch ran, for the next batch.
    private var carried: [ConsumedMessage] = []
    private var inFlight: InFlight?
    public private(set) var assigned: Set<Int32> = []

    public init(configuration: Configuration) {
        self.configuration = configuration
        awaited = AwaitedTasks(interval: configuration.statusCheckInterval)
    }

    /// Whether a batch is running on the batch thread.
    public var batchInFlight: Bool { inFlight != nil }

    /// When the earliest waiting retry is due; `nil` when none waits.
    public var nextRetryDue: ContinuousClock.Instant? { waiting.map(\.due).min() }

    /// When the earliest waiting retry or reading of awaited tasks is due; `nil` when none is.
    public var nextDue: ContinuousClock.Instant? { [nextRetryDue, awaited.nextCheck].compactMap { $0 }.min() }

    /// Tasks waiting out a retry backoff.
    public var waitingRetries: [TaskBatch.WaitingRetry] { waiting }

    /// Whether a position waits for its task to be terminal (``AwaitedTasks``).
    public var awaitsTasks: Bool { !awaited.isEmpty }

    /// How many messages the next poll may return.
    public var pollLimit: Int { max(1, configuration.batchSize - carried.count) }

    /// How long the next poll may wait: not at all with messages in hand, else until the
    /// next retry or reading is due, at most ``Configuration/idlePoll``.
    public func pollWait(now: ContinuousClock.Instant) -> Duration {
        if !carried.isEmpty { return .zero }
        // A stopping worker reads no awaited task's status any more: only its retries are due.
        guard let next = membership == .stopping ? nextRetryDue : nextDue else { return configuration.idlePoll }
        return max(.zero, min(configuration.idlePoll, next - now))
    }

    // MARK: - Events

    /// The loop polled `messages` (possibly none) at `now`.
    /// - Parameter epochMilliseconds: the wall-clock time, recorded as a poison message's
    ///   queued time.
    public mutating func polled(
        _ messages: [ConsumedMessage], now: ContinuousClock.Instant, epochMilliseconds: Int64 = 0
    ) -> [Action] {
        switch membership {
        case .gone, .cutOff:
            return []
        case .stopping:
            // Nothing new is taken; retries now due still run. A task waiting for another
            // worker's attempt to end is left to the partition's next owner: a stop must not
            // wait for another worker's batch. (A batch that finishes while stopping comes here
            // too, with the tasks it found running elsewhere.)
            carried = []
            waiting.removeAll(where: \.runsElsewhere)
            guard inFlight == nil else { return [] }
            if let due = nextRetryDue, due <= now { return [startBatch(messages: [], now: now, epochMilliseconds: 0)] }
            if waiting.isEmpty { return leave(exitAfter: true) }
            return []
        case .member:
            // A message of a partition revoked meanwhile belongs to its next owner.
            let owned = messages.filter { assigned.contains($0.partition) }
            if inFlight != nil {
                carried += owned
                return []
            }
            let polled = carried + owned
            carried = []
            let due = nextDue.map { $0 <= now } ?? false
            guard !polled.isEmpty || due else { return recommitIfDue(now: now) }
            return [startBatch(messages: polled, now: now, epochMilliseconds: epochMilliseconds)]
        }
    }

    private mutating func startBatch(
        messages: [ConsumedMessage], now: ContinuousClock.Instant, epochMilliseconds: Int64
    ) -> Action {
        var tasks = waiting.filter { $0.due <= now }.map(\.task)
        waiting.removeAll { $0.due <= now }
        var markers = held
        held = []
        for consumed in messages {
            let position = TaskPosition(partition: consumed.partition, offset: consumed.offset)
            watermark.track(partition: consumed.partition, offset: consumed.offset)
            do {
                switch try TopicMessage.decode(consumed.value) {
                case .task(let message):
                    tasks.append(BatchTask(message: message, position: position))
                case .end(let marker):
                    markers.append(EndMarker(marker: marker, position: position))
                }
            } catch {
                tasks.append(
                    PoisonMessage.task(
                        for: error, value: consumed.value, at: position, topic: configuration.topic,
                        now: epochMilliseconds))
            }
        }
        let statusChecks = awaited.takeCheck(now: now)
        inFlight = InFlight(startedAt: now, checksStatuses: !statusChecks.isEmpty)
        return .startBatch(
            TaskBatch(
                tasks: tasks, markers: markers,
                waitingPartitions: Set(waiting.flatMap(\.task.positions).map(\.partition)), retry: configuration.retry,
                statusChecks: statusChecks, awaitedPartitions: awaited.partitions))
    }

    /// The loop is still waiting for the batch at `now`, with `assigned` partitions: past
    /// ``Configuration/pauseAfter`` they are paused (again, after a rebalance).
    public mutating func batchStillRunning(now: ContinuousClock.Instant) -> [Action] {
        guard var batch = inFlight, now - batch.startedAt >= configuration.pauseAfter else { return [] }
        let partitions = assigned.sorted()
        guard partitions != batch.paused else { return [] }
        batch.paused = partitions
        inFlight = batch
        return partitions.isEmpty ? [] : [.pause(partitions)]
    }

    /// The batch settled `result` (see ``TaskBatch``).
    public mutating func batchFinished(_ result: BatchResult, now: ContinuousClock.Instant) -> [Action] {
        guard let batch = inFlight else { return [] }
        inFlight = nil
        let revoked = batch.revoked
        var settled = result.settled
        if batch.checksStatuses { settled += awaited.checked(terminal: result.terminal, now: now) }
        for position in settled where !revoked.contains(position.partition) {
            watermark.complete(partition: position.partition, offset: position.offset)
        }
        for task in result.refused.compactMap({ $0.keeping(allBut: revoked) }) {
            awaited.await(task.message.id, at: task.positions, now: now)
        }
        waiting += result.retries.compactMap { $0.keeping(allBut: revoked) }
        held += result.heldMarkers.filter { !revoked.contains($0.position.partition) }
        var actions: [Action] = []
        let stillPaused = batch.paused.filter { assigned.contains($0) }
        if !stillPaused.isEmpty { actions.append(.resume(stillPaused)) }
        if membership == .cutOff || membership == .gone {
            return actions
        }
        let again = nextRecommit.map { $0 <= now } ?? false
        if again || nextRecommit == nil { nextRecommit = now + configuration.recommitInterval }
        let offsets = watermark.takeCommittable(again: again)
        if !offsets.isEmpty { actions.append(.commit(offsets, synchronous: false)) }
        if membership == .stopping { actions += polled([], now: now) }
        return actions
    }

    /// A later poll told that the broker did not take a commit: every partition's committed
    /// offset is sent again ``Configuration/commitRetryDelay`` from now (its next poll then),
    /// not only at the next ``Configuration/recommitInterval``. A failing broker is not asked
    /// more often than that.
    public mutating func commitFailed(now: ContinuousClock.Instant) {
        let soon = now + configuration.commitRetryDelay
        if nextRecommit.map({ soon < $0 }) ?? true { nextRecommit = soon }
    }

    /// Sends every partition's committed offset again, moved or not, once per
    /// ``Configuration/recommitInterval``: the commit after a batch does not wait for the
    /// broker's answer, and one that failed (a broker stall, its coordinator moving) would stay
    /// behind for as long as its partition stays idle, holding back the scheduler's lost-task
    /// check and making the next owner read the tasks since then again.
    private mutating func recommitIfDue(now: ContinuousClock.Instant) -> [Action] {
        guard let due = nextRecommit, due <= now else { return [] }
        nextRecommit = now + configuration.recommitInterval
        let offsets = watermark.takeCommittable(again: true)
        return offsets.isEmpty ? [] : [.commit(offsets, synchronous: false)]
    }

    /// The batch could not reach Redis for longer than ``RedisOutage/limit``: what it did is
    /// not known to be recorded, so it settles nothing; what is terminal is committed and the
    /// worker leaves its group until Redis answers again (forgetting the awaited tasks, whose
    /// reading the batch took along).
    public mutating func batchAbandoned() -> [Action] {
        let paused = inFlight?.paused.filter { assigned.contains($0) } ?? []
        inFlight = nil
        var actions: [Action] = paused.isEmpty ? [] : [.resume(paused)]
        actions += redisUnreachable()
        return actions
    }

    /// Redis cannot be written (past the outage limit): commit only what is terminal, forget
    /// the rest (the next owners redeliver it) and leave the group.
    public mutating func redisUnreachable() -> [Action] {
        guard membership == .member || membership == .stopping else { return [] }
        let stopping = membership == .stopping
        let actions = leave(exitAfter: stopping)
        if !stopping { membership = .cutOff }
        return actions
    }

    /// Redis answers again after the worker left its group: join it again.
    public mutating func redisReachable() -> [Action] {
        guard membership == .cutOff else { return [] }
        membership = .member
        return [.joinGroup]
    }

    /// A stop was asked for (SIGTERM).
    public mutating func stopRequested(now: ContinuousClock.Instant) -> [Action] {
        switch membership {
        case .member:
            membership = .stopping
            return polled([], now: now)
        case .cutOff:
            membership = .gone
            return [.exit]
        case .stopping, .gone:
            return []
        }
    }

    /// Kafka assigned `partitions` (in addition to those held, under cooperative rebalancing).
    /// A partition that was revoked while the batch ran stays dropped for that batch even
    /// if it comes back: it is redelivered from its committed offset.
    public mutating func partitionsAssigned(_ partitions: [Int32]) -> [Action] {
        assigned.formUnion(partitions)
        return []
    }

    /// Kafka is about to take `partitions` away: what is terminal there is committed now
    /// (synchronously, before the next owner reads), and the rest is forgotten: the next
    /// owner redelivers it. Partitions `lost` (the session timed out, or the rebalance failed)
    /// are only forgotten: the group may have handed them on already, so the broker would
    /// refuse the commit, or, when it is the broker that is away, the commit would only wait;
    /// the next owner skips the tasks already terminal in Redis.
    public mutating func partitionsRevoked(_ partitions: [Int32], lost: Bool = false) -> [Action] {
        assigned.subtract(partitions)
        carried.removeAll { partitions.contains($0.partition) }
        var actions: [Action] = []
        if var batch = inFlight {
            // The batch's results there will be dropped; nothing more will be settled.
            batch.revoked.formUnion(partitions)
            inFlight = batch
        }
        // Every revoked partition's offset, moved or not: an earlier commit may have failed.
        let offsets = lost ? [:] : watermark.takeCommittable(only: Set(partitions), again: true)
        if !offsets.isEmpty { actions.append(.commit(offsets, synchronous: true)) }
        forget(partitions)
        return actions
    }

    private mutating func forget(_ partitions: some Sequence<Int32>) {
        let partitions = Set(partitions)
        watermark.forget(partitions: partitions)
        // A retry with a copy on a partition kept still runs here; the next owner of the others
        // may run it too, and Redis takes only one attempt's outcome.
        waiting = waiting.compactMap { $0.keeping(allBut: partitions) }
        awaited.forget(partitions: partitions)
        held.removeAll { partitions.contains($0.position.partition) }
        carried.removeAll { partitions.contains($0.partition) }
    }

    /// Commits what is terminal, forgets everything and leaves.
    private mutating func leave(exitAfter: Bool) -> [Action] {
        var actions: [Action] = []
        let offsets = watermark.takeCommittable(again: true)
        if !offsets.isEmpty { actions.append(.commit(offsets, synchronous: true)) }
        forget(Array(assigned) + watermark.partitions)
        assigned = []
        actions.append(.leaveGroup)
        if exitAfter {
            membership = .gone
            actions.append(.exit)
        }
        return actions
    }
}
