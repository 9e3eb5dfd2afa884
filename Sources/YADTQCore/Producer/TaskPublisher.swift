import Foundation
import Logging

/// What happened to one submitted task.
public struct PublishedTask: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// QUEUED in Redis and acknowledged by the broker.
        case published(partition: Int32)
        /// SCHEDULED in Redis until `dueAt` (epoch ms): the scheduler publishes it then.
        case scheduled(dueAt: Int64)
        /// A task with this id already exists; it was left alone and not published again.
        case duplicate
        /// QUEUED, then the broker did not take it; the task is now FAILED with this reason
        /// (but see ``PublishedTask/refusal`` for the tasks ``TaskPublisher/republish(_:to:policy:)``
        /// leaves as they are).
        case failed(String)

        /// Whether the task was taken: published now, or scheduled for later.
        public var isAccepted: Bool {
            switch self {
            case .published, .scheduled: true
            case .duplicate, .failed: false
            }
        }
    }

    public var message: TaskMessage
    public var outcome: Outcome
    /// Why the broker did not take the task (librdkafka's reason), without what to do: a
    /// caller republishing PROCESSING tasks, which ``TaskScripts/failUnpublished`` leaves as
    /// they are, or tasks the broker did not answer for, which the scheduler's republish leaves
    /// QUEUED, reads their status and says what it does with them instead.
    public var refusal: String?

    public init(message: TaskMessage, outcome: Outcome, refusal: String? = nil) {
        self.message = message
        self.outcome = outcome
        self.refusal = refusal
    }
}

/// Publishes tasks the way every YADTQ producer must: QUEUED in Redis first (one
/// round trip per batch), then the batch to Kafka round-robin over the partitions,
/// then FAILED for any task whose delivery failed. `yadtq-run` and `yadtq-web` both use it.
///
/// - Important: Calls block until the broker acknowledged the batch; call them from
///   a dedicated thread or through ``TaskStore/run(_:)``-style hops, not from a Swift task.
public final class TaskPublisher: @unchecked Sendable {
    // @unchecked Sendable: the round-robin cursor, the queue clock and the topics' partition
    // counts are guarded by `lock`; the producer and store are thread-safe.

    /// How many partitions a topic gets when a command creates it and no `--partitions` says
    /// otherwise (`yadtq-run`'s default; `yadtq-ctl retry` creates a missing topic with it).
    public static let defaultPartitions = 8

    private let producer: KafkaProducer
    public let store: TaskStore
    public let topic: String
    /// How many partitions a topic gets that this publisher creates: its own, or a retried task's.
    private let partitionsOfNewTopics: Int
    private let lock = NSLock()
    /// Where round-robin goes on. It starts at a random place: every `yadtq-run` and
    /// `yadtq-ctl retry` is a new publisher, and one that always began at partition 0 sent a
    /// stream of small runs (a cron job, a loop of one-task runs) to that partition's worker alone.
    private var cursor = Int.random(in: 0..<1_000_000)
    /// The `queued_at` of each batch, strictly increasing: the `queue` script takes a record of
    /// its very `queued_at` (and task) for its own call replayed, so two batches of one
    /// publisher in one millisecond would make an id's second submission read as queued.
    private var queueClock = CallClock()
    /// The partition count of each topic this publisher publishes to, read again when it is
    /// old or the broker contradicts it.
    private var partitionCounts: PartitionCounts
    private let plugins: PluginRegistry?
    /// The largest task message the producer sends; ``prepare(_:)`` refuses a larger one.
    public var messageLimit: MessageSizeLimit { producer.messageLimit }

    /// Connects to Redis and Kafka and creates `topic` with `partitions` partitions
    /// (and its dead-letter topic) when they do not exist yet.
    /// - Parameter partitions: also what a retried task's topic is created with when it is missing.
    /// - Parameter createsTopicNow: `false` to create `topic` only when a task is first
    ///   published to it: for `yadtq-ctl retry`, whose `topic` only takes the tasks that name no
    ///   topic of their own, so a retry that sends every task back to its own topic creates no
    ///   other; for the scheduler, so that a topic is made by its first task, not by a worker
    ///   that waits for `yadtq-run --partitions` to make it.
    /// - Parameter plugins: when the producer can see the plugin folder, a plugin's declared
    ///   `max_attempts` becomes the default for its tasks that do not set their own.
    /// - Parameter reconnectFor: how long a publish waits for an unreachable Redis before it fails.
    /// - Parameter boundsEveryCall: `reconnectFor` bounds each Redis call's whole time, a frozen
    ///   Redis's included (see ``TaskStore/init(settings:logger:reconnectFor:boundsEveryCall:)``).
    /// - Parameter partitionCountsAge: how long a topic's partition count is trusted before
    ///   it is read from the broker again (see ``PartitionCounts``).
    /// - Parameter deadline: when the caller's answer is due (a web request's): the check that
    ///   Redis answers waits only until then (see ``TaskStore/within(_:_:)``).
    public init(
        settings: YADTQSettings, topic: String, partitions: Int, createsTopicNow: Bool = true, clientID: String,
        logger: Logger, plugins: PluginRegistry? = nil, reconnectFor: Duration = .seconds(60),
        boundsEveryCall: Bool = false, partitionCountsAge: Duration = PartitionCounts.standardMaximumAge,
        by deadline: CallDeadline? = nil
    ) throws {
        self.plugins = plugins
        partitionCounts = PartitionCounts(maximumAge: partitionCountsAge)
        let store = TaskStore(settings: settings, logger: logger, reconnectFor: reconnectFor, boundsEveryCall: boundsEveryCall)
        self.store = store
        try store.within(deadline) { try store.ping() }
        producer = try KafkaProducer(settings: settings, clientID: clientID)
        self.topic = topic
        partitionsOfNewTopics = partitions
        if createsTopicNow { _ = try partitionCount(of: topic) }
    }

    /// The topic's partition count (the topic created when missing).
    public var partitions: Int {
        get throws { try partitionCount(of: topic) }
    }

    /// Creates the topic again if it is gone (a broker that lost it), with the partitions it
    /// had: as this publisher last read them, else `had`; returns its partition count.
    @discardableResult
    public func ensureTopic(had: Int) throws -> Int {
        let lastRead = lock.withLock { partitionCounts.lastCount(of: topic) }
        let count = try producer.client.ensureTopic(topic, partitions: lastRead ?? had)
        lock.withLock { partitionCounts.read(count, of: topic, at: .now) }
        return count
    }

    /// Gives each declaration its id (a new UUID unless it names one) and its attempts:
    /// its own, else its plugin's `max_attempts`, else 3.
    public func messages(for declarations: [TaskDeclaration], at now: Int64) -> [TaskMessage] {
        TaskID.named(declarations).map { declaration in
            let maxAttempts = declaration.maxAttempts ?? plugins?.info(for: declaration.type)?.maxAttempts
            return TaskMessage(
                id: declaration.id!, type: declaration.type, args: declaration.args,
                maxAttempts: maxAttempts ?? TaskMessage.defaultMaxAttempts, queuedAt: now)
        }
    }

    /// Publishes a batch; the result has one entry per declaration, in order. Throws
    /// ``TooLarge``, having written nothing, when a task's message would be too large.
    public func publish(_ declarations: [TaskDeclaration]) throws -> [PublishedTask] {
        let batch = prepare(declarations)
        guard batch.refused.isEmpty else { throw TooLarge(refused: batch.refused) }
        return try publish(batch)
    }

    /// A declaration ``prepare(_:)`` refused: its position among the declarations, and why.
    public struct Refusal: Sendable, Equatable {
        public var index: Int
        public var reason: String

        /// The reason with the task's place in its batch (1-based).
        public var text: String { "task \(index + 1): \(reason)" }
    }

    /// Tasks whose messages would be larger than the producer sends (``MessageSizeLimit``).
    public struct TooLarge: Error, CustomStringConvertible {
        public var refused: [Refusal]

        public var description: String {
            refused.map(\.text).joined(separator: "; ")
        }
    }

    /// Tasks made ready to publish: ids and attempts given, arguments and Kafka values
    /// serialized. Preparing touches neither Redis nor Kafka, so ``TaskSubmission``
    /// prepares the next batch while the one before it is being published.
    public struct PreparedBatch: Sendable {
        public let messages: [TaskMessage]
        /// Each message's arguments as stored in Redis.
        let renderedArgs: [[UInt8]]
        /// Each message's Kafka value.
        let values: [[UInt8]]
        /// When each task is due (epoch ms; 0 for at once).
        let dueAt: [Int64]
        /// The declarations left out because their message would be too large.
        public let refused: [Refusal]
    }

    /// Gives the tasks their ids, attempts and due times and serializes them; `queued_at` is
    /// now, and later than any earlier batch's of this publisher (see ``queueClock``). A task
    /// whose message would be larger than ``messageLimit`` is left out, in `refused`: the
    /// broker would never take it, so it is not even written QUEUED.
    public func prepare(_ declarations: [TaskDeclaration]) -> PreparedBatch {
        let now = lock.withLock { queueClock.next(wall: currentEpochMilliseconds()) }
        var messages = messages(for: declarations, at: now)
        var renderedArgs = messages.map(\.renderedArgs)
        var values = zip(messages, renderedArgs).map { $0.encoded(renderedArgs: $1) }
        var dueAt = declarations.map { $0.start?.dueAt(now: now) ?? 0 }
        let refused = messages.indices.compactMap { index in
            messageLimit.refusal(keyBytes: messages[index].id.utf8.count, valueBytes: values[index].count)
                .map { Refusal(index: index, reason: $0) }
        }
        for refusal in refused.reversed() {
            messages.remove(at: refusal.index)
            renderedArgs.remove(at: refusal.index)
            values.remove(at: refusal.index)
            dueAt.remove(at: refusal.index)
        }
        return PreparedBatch(messages: messages, renderedArgs: renderedArgs, values: values, dueAt: dueAt, refused: refused)
    }

    /// Publishes a prepared batch: QUEUED in Redis (SCHEDULED for a task due later, which is
    /// not sent now), then Kafka, then FAILED for what the broker did not take. The result
    /// has one entry per task, in order.
    public func publish(_ batch: PreparedBatch) throws -> [PublishedTask] {
        try send(queue(batch))
    }

    /// A prepared batch written to Redis by ``queue(_:)``, for ``send(_:)``.
    public struct QueuedBatch: Sendable {
        let batch: PreparedBatch
        let queued: [TaskStore.Queued]
    }

    /// The first half of ``publish(_:)``: writes the batch QUEUED (or SCHEDULED) to Redis.
    /// When it throws, nothing of the batch was queued.
    public func queue(_ batch: PreparedBatch) throws -> QueuedBatch {
        QueuedBatch(
            batch: batch,
            queued: try store.queue(batch.messages, renderedArgs: batch.renderedArgs, dueAt: batch.dueAt, topic: topic))
    }

    /// The second half of ``publish(_:)``: sends what ``queue(_:)`` queued to Kafka, then
    /// marks FAILED what the broker did not take. When it throws, the batch is QUEUED all the
    /// same, and the scheduler publishes again what did not reach the broker.
    public func send(_ queuedBatch: QueuedBatch) throws -> [PublishedTask] {
        let batch = queuedBatch.batch, queued = queuedBatch.queued
        var results = try produce(
            batch.messages, values: batch.values, queued: queued.map { $0 == .queued }, to: topic, policy: .submission)
        for index in queued.indices where queued[index] == .scheduled {
            results[index].outcome = .scheduled(dueAt: batch.dueAt[index])
        }
        return results
    }

    /// What a publish does with the tasks the broker did not take, by who publishes them.
    public enum UndeliveredPolicy: Sendable {
        /// A producer's publish (`yadtq-run`, `yadtq-web`): a task the broker refused or did not
        /// answer for is FAILED, for the user to see; a Kafka error that stops the publish is
        /// thrown and leaves the tasks it kept from the broker QUEUED, for the scheduler.
        case submission
        /// An operator's retry: as a submission, and a Kafka error that stops the publish (the
        /// broker unreachable, the topic's metadata unreadable) makes the tasks it kept from the
        /// broker FAILED with its text, so that `yadtq-ctl retry` takes them again (left QUEUED,
        /// a retry would refuse them).
        case retry
        /// The scheduler, which publishes what stays QUEUED at a later run: only a task the
        /// broker refused is FAILED. One it did not answer for in time
        /// (``DeliveryFailure/brokerDidNotAnswer``: unreachable, or silent, from this worker)
        /// stays QUEUED, as do those a Kafka error kept from it. A broker out of reach for longer
        /// than a publish waits, or cut off from the scheduler's worker alone, must not fail the
        /// tasks that came due meanwhile.
        case schedule

        var failsUnsent: Bool { self == .retry }
        var failsUnanswered: Bool { self != .schedule }
    }

    /// Publishes tasks that are QUEUED in Redis already (an operator's retry of FAILED or
    /// CANCELLED tasks, see ``TaskStore/requeue(_:at:)``; the scheduler's due and lost
    /// tasks), then FAILED for what the broker did not take, as `policy` says. The result has
    /// one entry per task, in order.
    /// - Parameter taskTopic: the topic to publish to, when not this publisher's (a retried
    ///   task goes back to the topic its record names); it is created when missing.
    public func republish(_ messages: [TaskMessage], to taskTopic: String? = nil, policy: UndeliveredPolicy) throws
        -> [PublishedTask]
    {
        try produce(
            messages, values: messages.map { $0.encoded() },
            queued: messages.map { _ in true }, to: taskTopic ?? topic, policy: policy)
    }

    /// The partition count of `taskTopic`, read from the broker when ``PartitionCounts`` says
    /// so: the topic and its dead-letter topic are created when missing, with
    /// ``partitionsOfNewTopics`` (or the count it had) and 1 partitions.
    private func partitionCount(of taskTopic: String) throws -> Int {
        let (known, had) = lock.withLock {
            (partitionCounts.count(of: taskTopic, now: .now), partitionCounts.lastCount(of: taskTopic))
        }
        if let known { return known }
        let count = try producer.client.ensureTopic(taskTopic, partitions: had ?? partitionsOfNewTopics)
        _ = try producer.client.ensureTopic(TopicName.deadLetter(of: taskTopic), partitions: 1)
        lock.withLock { partitionCounts.read(count, of: taskTopic, at: .now) }
        return count
    }

    /// The partition `count` messages sent round-robin over `partitions` begin at; the cursor
    /// moves past them.
    private func takePartitions(_ count: Int, of partitions: Int) -> Int {
        lock.withLock {
            defer { cursor = (cursor + count) % partitions }
            return cursor % partitions
        }
    }

    /// Sends the `queued` ones of `messages` to `taskTopic` round-robin, then marks FAILED what
    /// the broker did not take, as `policy` says.
    private func produce(
        _ messages: [TaskMessage], values: [[UInt8]], queued: [Bool], to taskTopic: String,
        policy: UndeliveredPolicy
    ) throws -> [PublishedTask] {
        var results = messages.map { PublishedTask(message: $0, outcome: .duplicate) }
        let sent = messages.indices.filter { queued[$0] }
        var deliveries: [Int: Delivery] = [:]
        do {
            try deliver(to: taskTopic, into: &deliveries) { again, partitions in
                let slots = again ?? Array(sent.indices)
                let firstPartition = takePartitions(slots.count, of: partitions)
                return slots.enumerated().map { position, slot in
                    let index = sent[slot]
                    let partition = Int32((firstPartition + position) % partitions)
                    return (slot, OutgoingMessage(partition: partition, key: Array(messages[index].id.utf8), value: values[index]))
                }
            }
        } catch where policy.failsUnsent {
            for slot in sent.indices where deliveries[slot] == nil {
                deliveries[slot] = .refused("\(error)", unanswered: false)
            }
        }
        var unpublished: [(id: String, reason: String)] = []
        for (slot, delivery) in deliveries.sorted(by: { $0.key < $1.key }) {
            let index = sent[slot]
            switch delivery {
            case .taken(let partition):
                results[index].outcome = .published(partition: partition)
            case .refused(let reason, let unanswered):
                let text = Self.notPublished(id: messages[index].id, topic: taskTopic, reason: reason)
                results[index].outcome = .failed(text)
                results[index].refusal = reason
                if policy.failsUnanswered || !unanswered { unpublished.append((messages[index].id, text)) }
            }
        }
        if !unpublished.isEmpty { try store.failUnpublished(unpublished, at: currentEpochMilliseconds()) }
        return results
    }

    /// What became of one message ``deliver(to:into:placing:)`` sent.
    private enum Delivery {
        case taken(partition: Int32)
        /// librdkafka's reason (with its code), or the error that kept the message from the
        /// broker; `unanswered`: the broker did not answer in time (``DeliveryFailure/brokerDidNotAnswer``).
        case refused(String, unanswered: Bool)
    }

    /// Produces to `topic` the messages `place` makes for its partition count. When librdkafka
    /// refuses some for a partition it does not know (the topic made again with fewer), the
    /// count is read again (``PartitionCounts``) and `place` makes those again for it, once.
    /// - Parameters:
    ///   - deliveries: what became of each message, by its number, as it becomes known: when
    ///     this throws, the messages it names were taken or refused, and the others not sent.
    ///   - place: given the numbers of the messages to make again (`nil` the first time: all of
    ///     them) and the partition count, the messages to produce, each with its number; a
    ///     number left out is not sent.
    private func deliver(
        to topic: String, into deliveries: inout [Int: Delivery],
        placing place: (_ again: [Int]?, _ partitions: Int) throws -> [(number: Int, message: OutgoingMessage)]
    ) throws {
        var again: [Int]? = nil
        repeat {
            let placed = try place(again, try partitionCount(of: topic))
            let failures = try producer.produce(topic: topic, placed.map(\.message))
            var unknown: [Int] = []
            for (position, (number, message)) in placed.enumerated() {
                switch failures[position] {
                case nil: deliveries[number] = .taken(partition: message.partition)
                // Once: a count read again that librdkafka still contradicts is its final answer.
                case let failure? where failure.isUnknownPartition && again == nil: unknown.append(number)
                case let failure?:
                    deliveries[number] = .refused(failure.description, unanswered: failure.brokerDidNotAnswer)
                }
            }
            if !unknown.isEmpty { lock.withLock { partitionCounts.partitionUnknown(in: topic) } }
            again = unknown.isEmpty ? nil : unknown
        } while again != nil
    }

    /// The error of a task the broker did not take (librdkafka's `reason`), with what to do:
    /// the task is FAILED, and nothing publishes it again unless an operator does.
    public static func notPublished(id: String, topic: String, reason: String) -> String {
        "could not be published to \(topic): \(reason). Check the broker (YADTQ_BROKERS), then publish it again: "
            + "yadtq-ctl retry \(id)"
    }

    /// Publishes an end marker to every partition, after everything published before it. A
    /// marker librdkafka refuses for a partition it does not know (the topic made again with
    /// fewer) is published again over the partitions the topic has, and recorded with their count.
    /// - Returns: the marker's id.
    @discardableResult
    public func publishEnd() throws -> String {
        let marker = TaskID.random(count: 1)[0]
        let value = TopicMessage.endMarker(marker)
        var deliveries: [Int: Delivery] = [:]
        try deliver(to: topic, into: &deliveries) { again, partitions in
            // Recorded first, so a worker that reaches the marker finds what it belongs to.
            try store.recordEndPublished(topic: topic, marker: marker, partitions: partitions, at: currentEpochMilliseconds())
            return (again ?? Array(0..<partitions)).filter { $0 < partitions }.map {
                ($0, OutgoingMessage(partition: Int32($0), key: [], value: value))
            }
        }
        let refused = deliveries.values.compactMap { delivery -> String? in
            if case .refused(let reason, _) = delivery { reason } else { nil }
        }
        if let reason = refused.first {
            throw YADTQError(
                .kafka, "the end marker could not be published to \(refused.count) partitions of \(topic): \(reason)",
                remedy: "Check the broker, then publish the marker again: echo end | yadtq-run --topic \(topic)")
        }
        return marker
    }
}

extension TaskPublisher {
    /// An operator's retry: queues FAILED or CANCELLED tasks again under their ids (see
    /// ``TaskStore/requeue(_:at:)``) and publishes them again, ``retryChunkSize`` ids per Redis call. One
    /// change per id, in order. A task that was not published, the broker refusing it or
    /// unreachable, is FAILED again (``TaskStore/OperatorChange/publishFailed(_:)``, with the
    /// reason and the retry that publishes it), and the tasks of other topics go on. An id
    /// named twice is one task, queued and published once.
    public func retry(_ ids: [String]) throws -> [TaskStore.OperatorChange] {
        try TaskStore.oncePerID(ids) { ids in try retryChunks(of: ids, pacing: nil) }
    }

    /// Retries distinct `ids` ``retryChunkSize`` at a time; with `pacing`, only the chunks it
    /// starts: the changes answer a prefix of `ids`, and the ids past it were left alone.
    func retryChunks(of ids: [String], pacing: BulkRetryPacing?) throws -> [TaskStore.OperatorChange] {
        var pacing = pacing
        var changes: [TaskStore.OperatorChange] = []
        for start in stride(from: 0, to: ids.count, by: Self.retryChunkSize) {
            let began = ContinuousClock.now
            guard pacing?.startsChunk(at: began) ?? true else { break }
            changes += try retryChunk(Array(ids[start..<min(start + Self.retryChunkSize, ids.count)]))
            pacing?.chunkEnded(taking: .now - began)
        }
        return changes
    }

    /// How many tasks a retry queues again in one Redis call, then publishes.
    public static let retryChunkSize = 1000

    /// Each task goes back to the topic its record names, where its workers are (`retry
    /// --failed` takes tasks of every topic); this publisher's topic is only for a record
    /// without one.
    private func retryChunk(_ ids: [String]) throws -> [TaskStore.OperatorChange] {
        var changes = try store.requeue(ids, at: currentEpochMilliseconds())
        let requeued = ids.indices.filter { changes[$0] == .requeued }
        let records = try store.records(ids: requeued.map { ids[$0] })
        var byTopic: [String: (indexes: [Int], messages: [TaskMessage])] = [:]
        for (index, record) in zip(requeued, records) {
            guard let record else { continue }
            let message = record.message(orQueuedAt: currentEpochMilliseconds())
            byTopic[record.topic ?? topic, default: ([], [])].indexes.append(index)
            byTopic[record.topic ?? topic, default: ([], [])].messages.append(message)
        }
        for (taskTopic, group) in byTopic.sorted(by: { $0.key < $1.key }) {
            for (index, published) in zip(group.indexes, try republish(group.messages, to: taskTopic, policy: .retry)) {
                if case .failed(let reason) = published.outcome { changes[index] = .publishFailed(reason) }
            }
        }
        return changes
    }
}
