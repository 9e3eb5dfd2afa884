import CRdKafka
import Foundation
import Logging

/// One message as consumed from the task topic.
public struct ConsumedMessage: Sendable, Hashable {
    public var partition: Int32
    public var offset: Int64
    public var value: [UInt8]

    public init(partition: Int32, offset: Int64, value: [UInt8]) {
        self.partition = partition
        self.offset = offset
        self.value = value
    }
}

/// Told of rebalances and of commits the broker did not take, on the consumer's polling
/// thread, inside `poll` or `close`.
public protocol KafkaRebalanceListener: AnyObject {
    /// `partitions` were assigned (in addition to those held, under cooperative rebalancing).
    func consumer(_ consumer: KafkaConsumer, didAssign partitions: [Int32])
    /// `partitions` are about to be taken away: commit what is finished on them now, unless
    /// `lost`: then they may already be another member's (the session timed out, or the
    /// rebalance failed), and a commit would only be refused or wait on a broker that is away.
    func consumer(_ consumer: KafkaConsumer, willRevoke partitions: [Int32], lost: Bool)
    /// An asynchronous commit failed, for `partitions` (all of the commit's when the whole
    /// request failed): their offsets are where they were before it.
    func consumer(_ consumer: KafkaConsumer, commitFailed partitions: [Int32], error: YADTQError)
}

/// A group consumer with manual offset commits.
///
/// - Important: Not thread-safe: `poll`, `commit` and `close` block and must be
///   called from the one thread that owns the consumer (the worker's loop).
///   Rebalance callbacks run inside `poll` on that thread. The consumer holds its
///   ``listener`` weakly, so a listener may own the consumer.
public final class KafkaConsumer {
    let client: RDKafkaClient
    let topic: String
    private let rebalance: RebalanceState
    private let logger: Logger

    /// Consumer defaults. The session timeout is short so a dead worker's partitions
    /// move within seconds, and some brokers hold a group's first join for about half
    /// of it; heartbeats go out well inside it. Override with YADTQ_KAFKA_SESSION_TIMEOUT_MS.
    static let defaults: [String: String] = [
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "1000",
        "fetch.wait.max.ms": "50",
        "enable.partition.eof": "false",
        // Incremental rebalancing: when a worker joins or dies, only the partitions that move
        // pause; the others keep being consumed (the rebalance callback assigns incrementally).
        // The assignor runs in the group's leader client, so any Kafka-protocol broker serves it.
        "partition.assignment.strategy": "cooperative-sticky",
        // Prefetch a few seconds of work, not librdkafka's 100,000 messages per partition
        // (64 MiB): with a backlog that made a worker's memory grow with the backlog.
        "queued.min.messages": "5000",
        "queued.max.messages.kbytes": "8192",
        // Above those, librdkafka postpones a partition's next fetch by this much (1 s by
        // default): a worker that empties its prefetch in a fraction of a second then waits
        // the rest of it with nothing to run. That capped scripts/bench at 37,000 tasks/s
        // with both workers idle two thirds of the time. (librdkafka 2.1 and later.)
        "fetch.queue.backoff.ms": "20",
    ]

    public init(settings: YADTQSettings, topic: String, clientID: String, logger: Logger) throws {
        let rebalance = RebalanceState(logger: logger)
        self.rebalance = rebalance
        self.topic = topic
        self.logger = logger
        var defaults = Self.defaults
        defaults["group.id"] = settings.group
        defaults["client.id"] = clientID
        client = try RDKafkaClient(
            kind: .consumer, brokers: settings.brokers, defaults: defaults, overrides: settings.kafkaOverrides
        ) { conf in
            rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(rebalance).toOpaque())
            rd_kafka_conf_set_rebalance_cb(conf) { handle, error, partitions, opaque in
                guard let handle, let opaque else { return }
                Unmanaged<RebalanceState>.fromOpaque(opaque).takeUnretainedValue()
                    .handle(handle, error, partitions)
            }
            // A commit's answer comes back through a later poll: the commit after a batch does
            // not wait for it, and a failed one must be sent again.
            rd_kafka_conf_set_offset_commit_cb(conf) { _, error, offsets, opaque in
                guard let opaque else { return }
                Unmanaged<RebalanceState>.fromOpaque(opaque).takeUnretainedValue().committed(error, offsets)
            }
        }
        rd_kafka_poll_set_consumer(client.handle)
        rebalance.consumer = self
    }

    /// Told of every rebalance; held weakly.
    public weak var listener: (any KafkaRebalanceListener)? {
        get { rebalance.listener }
        set { rebalance.listener = newValue }
    }

    /// The partitions this consumer holds now.
    public var assignedPartitions: [Int32] { rebalance.assignment.assigned.sorted() }

    public func subscribe() throws {
        let error = RDKafkaTopicPartitionList.subscription(to: topic).withPointer { rd_kafka_subscribe(client.handle, $0) }
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaFailure.error(error, "cannot subscribe to topic \(topic)")
        }
    }

    /// Waits up to `timeout` for a first message, then takes whatever else is ready,
    /// up to `limit` messages. Transient consumer errors are logged, not thrown.
    public func poll(limit: Int, timeout: Duration) -> [ConsumedMessage] {
        var messages: [ConsumedMessage] = []
        var wait = Int32(timeout.inMilliseconds)
        while messages.count < limit, let message = rd_kafka_consumer_poll(client.handle, wait) {
            defer { rd_kafka_message_destroy(message) }
            wait = 0
            let value = message.pointee
            if value.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                report(value.err, String(cString: rd_kafka_message_errstr(message)))
                continue
            }
            let bytes = value.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: value.len)) } ?? []
            messages.append(ConsumedMessage(partition: value.partition, offset: value.offset, value: bytes))
        }
        return messages
    }

    private var lastReported: (rd_kafka_resp_err_t, ContinuousClock.Instant)?

    /// Logs consumer errors at most once per 10 s per code: a broker outage must be
    /// visible but must not flood the log.
    private func report(_ error: rd_kafka_resp_err_t, _ text: String) {
        let now = ContinuousClock.now
        if let (code, at) = lastReported, code == error, now - at < .seconds(10) { return }
        lastReported = (error, now)
        logger.warning("\(KafkaFailure.error(error, "consumer error on \(topic)", detail: text))")
    }

    /// How long a commit that waits for its answer (before partitions leave) and leaving the
    /// group may take. librdkafka would wait for a broker that holds the connection open and
    /// answers nothing (frozen, or cut off by a firewall) until socket.timeout.ms or longer,
    /// and a stopping worker would wait with it; past these bounds it goes on without the
    /// answer, which loses nothing (see ``commit(_:synchronous:)``).
    static let commitTimeout: Duration = .seconds(5)
    static let closeTimeout: Duration = .seconds(10)

    /// Commits the next offsets to read, per partition (`offset` = last done + 1). An
    /// asynchronous commit's answer comes through a later poll (see
    /// ``KafkaRebalanceListener``); a synchronous one waits for its answer for at most
    /// ``commitTimeout`` and throws when none came.
    public func commit(_ offsets: [Int32: Int64], synchronous: Bool) throws {
        guard !offsets.isEmpty else { return }
        let list = RDKafkaTopicPartitionList(topic: topic, offsets: offsets)
        guard synchronous else {
            let error = list.withPointer { rd_kafka_commit(client.handle, $0, 1) }
            if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR__NO_OFFSET {
                throw KafkaFailure.error(error, "cannot commit offsets on \(topic)")
            }
            return
        }
        // rd_kafka_commit(..., async=0) has no time limit: the answer is asked for on a queue
        // of this call's own, read with a deadline. A late answer lands on the destroyed queue,
        // which librdkafka drops.
        guard let queue = rd_kafka_queue_new(client.handle) else {
            throw YADTQError(.kafka, "cannot allocate a librdkafka queue for a commit")
        }
        defer { rd_kafka_queue_destroy(queue) }
        let partitions = offsets.keys.sorted()
        let sent = list.withPointer { rd_kafka_commit_queue(client.handle, $0, queue, nil, nil) }
        if sent != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaFailure.error(sent, "cannot commit offsets of partitions \(partitions) on \(topic)")
        }
        guard let event = rd_kafka_queue_poll(queue, Int32(Self.commitTimeout.inMilliseconds)) else {
            throw YADTQError(
                .kafka,
                "the broker did not answer the commit of partitions \(partitions) on \(topic) within \(Self.commitTimeout); going on without it",
                libraryCode: RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue,
                libraryMessage: String(cString: rd_kafka_err2str(RD_KAFKA_RESP_ERR__TIMED_OUT)),
                remedy: "Nothing is lost: the tasks below these offsets are terminal in Redis, so the partitions' next owner recognises and skips them when it reads them again. Check the broker if it goes on")
        }
        defer { rd_kafka_event_destroy(event) }
        let error = rd_kafka_event_error(event)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaFailure.error(
                error, "the broker did not take the commit of partitions \(partitions) on \(topic)",
                detail: rd_kafka_event_error_string(event))
        }
        let failed = rd_kafka_event_topic_partition_list(event).map(RDKafkaTopicPartitionList.elements(of:))?
            .filter { $0.err != RD_KAFKA_RESP_ERR_NO_ERROR } ?? []
        if let first = failed.first {
            throw KafkaFailure.error(
                first.err, "the broker did not take the commit of partitions \(failed.map(\.partition).sorted()) on \(topic)")
        }
    }

    /// Stops fetching from `partitions` (polls still serve the group), or starts again;
    /// a resumed partition continues after the last message `poll` returned. librdkafka
    /// keeps a partition paused across a rebalance, so one that comes back (re)assigned
    /// while paused is resumed by the rebalance callback.
    public func pause(_ partitions: [Int32]) {
        rebalance.assignment.pause(partitions)
        setPaused(partitions, true)
    }

    public func resume(_ partitions: [Int32]) {
        rebalance.assignment.resume(partitions)
        setPaused(partitions, false)
    }

    fileprivate func setPaused(_ partitions: [Int32], _ paused: Bool) {
        guard !partitions.isEmpty else { return }
        let error = RDKafkaTopicPartitionList(topic: topic, partitions: partitions).withPointer { list in
            paused ? rd_kafka_pause_partitions(client.handle, list) : rd_kafka_resume_partitions(client.handle, list)
        }
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("\(KafkaFailure.error(error, paused ? "cannot pause partitions" : "cannot resume partitions"))")
        }
    }

    private var closed = false

    /// Leaves the group cleanly, so the others get the partitions at once (idempotent). Gives
    /// up after ``closeTimeout`` when the broker does not answer: the group's session timeout
    /// then moves the partitions, as when a worker dies.
    public func close() {
        guard !closed else { return }
        closed = true
        // rd_kafka_consumer_close has no time limit either: the close runs in librdkafka's
        // background, and its rebalance and commit callbacks are served here until it is done.
        guard let queue = rd_kafka_queue_new(client.handle) else {
            logger.warning("cannot allocate a librdkafka queue to leave the consumer group; leaving it to the session timeout")
            return
        }
        defer { rd_kafka_queue_destroy(queue) }
        if let error = rd_kafka_consumer_close_queue(client.handle, queue) {
            logger.warning("\(KafkaFailure.taking(error, "leaving the consumer group failed"))")
            return
        }
        let deadline = ContinuousClock.now + Self.closeTimeout
        while rd_kafka_consumer_closed(client.handle) == 0 {
            guard ContinuousClock.now < deadline else {
                logger.warning(
                    "leaving the consumer group took longer than \(Self.closeTimeout): the broker does not answer; going on without it (its session timeout, YADTQ_KAFKA_SESSION_TIMEOUT_MS, moves the partitions to the others)")
                return
            }
            rd_kafka_queue_poll_callback(queue, 100)
        }
    }

    deinit { close() }
}

/// Performs the rebalances ``PartitionAssignment`` rules on, and passes commit failures on.
/// Lives apart from ``KafkaConsumer`` because librdkafka needs its address before the handle
/// exists.
private final class RebalanceState: @unchecked Sendable {
    // @unchecked Sendable: librdkafka calls the rebalance and commit callbacks only from
    // inside rd_kafka_consumer_poll/close (the consumer's queue serves them, see
    // rd_kafka_poll_set_consumer), i.e. on the consumer's owning thread, which is also the
    // only thread that reads or changes `assignment` and sets `listener`.
    var assignment = PartitionAssignment()
    weak var listener: (any KafkaRebalanceListener)?
    /// Set right after the consumer is made; weak, as the consumer owns this state.
    weak var consumer: KafkaConsumer?
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func handle(_ handle: OpaquePointer, _ error: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        let changed = (partitions.map(Self.partitions(of:)) ?? []).sorted()
        let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
        switch error {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            perform(assignment.assign(changed, cooperative: cooperative), handle, partitions, changed: changed)
            logger.info("assigned partitions \(changed)")
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(handle) != 0
            perform(assignment.revoke(changed, lost: lost, cooperative: cooperative), handle, partitions, changed: changed)
            logger.info("\(lost ? "lost" : "revoked") partitions \(changed)")
        default:
            let held = assignment.assigned.sorted()
            logger.error("\(KafkaFailure.error(error, "rebalance failed; dropping partitions \(held) until the group assigns again"))")
            perform(assignment.failRebalance(), handle, partitions, changed: changed)
        }
    }

    /// `partitions`: the list librdkafka lent the callback, which the assignment calls take
    /// (`changed`: its partitions, for the messages).
    private func perform(
        _ actions: [PartitionAssignment.Action], _ handle: OpaquePointer,
        _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, changed: [Int32]
    ) {
        for action in actions {
            switch action {
            case .addToAssignment:
                check(rd_kafka_incremental_assign(handle, partitions), "cannot add partitions \(changed) to the assignment")
            case .replaceAssignment:
                check(rd_kafka_assign(handle, partitions), "cannot take the assignment of partitions \(changed)")
            case .removeFromAssignment:
                check(rd_kafka_incremental_unassign(handle, partitions), "cannot remove partitions \(changed) from the assignment")
            case .dropAssignment(let held):
                check(rd_kafka_assign(handle, nil), "cannot drop the assignment of partitions \(held)")
            case .resume(let resumed):
                consumer?.setPaused(resumed, false)
            case .tellAssigned(let assigned):
                if let consumer { listener?.consumer(consumer, didAssign: assigned) }
            case .tellRevoked(let revoked, let lost):
                if let consumer { listener?.consumer(consumer, willRevoke: revoked, lost: lost) }
            }
        }
    }

    /// Logs the error of an assignment call, which librdkafka leaves to the caller: unlogged,
    /// a refused assignment looked like a worker that holds partitions and reads nothing.
    private func check(_ error: OpaquePointer?, _ message: String) {
        guard let error else { return }
        logger.error("\(KafkaFailure.taking(error, message))")
    }

    private func check(_ error: rd_kafka_resp_err_t, _ message: String) {
        guard error != RD_KAFKA_RESP_ERR_NO_ERROR else { return }
        logger.error("\(KafkaFailure.error(error, message))")
    }

    /// A commit's answer: a failure of the whole request, or of some partitions. "No offset"
    /// is not one: nothing was left to commit.
    func committed(_ error: rd_kafka_resp_err_t, _ offsets: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        guard let consumer else { return }
        let elements = offsets.map(RDKafkaTopicPartitionList.elements(of:)) ?? []
        func report(_ code: rd_kafka_resp_err_t, _ partitions: [Int32]) {
            let failure = KafkaFailure.error(code, "the broker did not take the commit of partitions \(partitions)")
            listener?.consumer(consumer, commitFailed: partitions, error: failure)
        }
        if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR__NO_OFFSET {
            report(error, elements.map(\.partition).sorted())
            return
        }
        let failed = elements.filter { $0.err != RD_KAFKA_RESP_ERR_NO_ERROR }
        for code in Set(failed.map(\.err.rawValue)).sorted() {
            report(rd_kafka_resp_err_t(code), failed.filter { $0.err.rawValue == code }.map(\.partition).sorted())
        }
    }

    private static func partitions(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [Int32] {
        RDKafkaTopicPartitionList.elements(of: list).map(\.partition)
    }
}
