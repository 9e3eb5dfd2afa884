import CRdKafka
import Foundation

/// A message to produce to an explicit partition.
public struct OutgoingMessage: Sendable {
    public var partition: Int32
    public var key: [UInt8]
    public var value: [UInt8]

    public init(partition: Int32, key: [UInt8], value: [UInt8]) {
        self.partition = partition
        self.key = key
        self.value = value
    }
}

/// Why a message was not delivered.
public struct DeliveryFailure: Sendable, Equatable, CustomStringConvertible {
    /// librdkafka's message and code, or why no delivery report came.
    public let description: String
    /// The message named a partition the topic does not have (as far as librdkafka knows):
    /// the producer's partition count is out of date.
    public let isUnknownPartition: Bool
    /// The broker did not answer in time (unreachable, or silent): the message may reach it
    /// later from another try, unlike one it refused.
    public let brokerDidNotAnswer: Bool

    init(_ code: rd_kafka_resp_err_t) {
        description = "\(String(cString: rd_kafka_err2str(code))) (librdkafka code \(code.rawValue))"
        isUnknownPartition = code == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION
        brokerDidNotAnswer = [
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ].contains(code)
    }

    init(unsettled reason: String) {
        description = reason
        isUnknownPartition = false
        brokerDidNotAnswer = true
    }
}

/// Produces batches of messages and waits for the broker to acknowledge them,
/// reporting which ones could not be delivered and why.
///
/// - Important: `produce` blocks until the batch is acknowledged; call it from a
///   dedicated thread. Batches from several threads are serialized.
public final class KafkaProducer: @unchecked Sendable {
    // @unchecked Sendable: all mutable state (`topics`, and the delivery failures `ledger`
    // collects) is touched only while holding `lock`; delivery callbacks run inside
    // rd_kafka_flush/poll, which are called only with the lock held.
    private let lock = NSLock()
    private let ledger: DeliveryLedger
    private var topics: [String: OpaquePointer] = [:]
    let client: RDKafkaClient
    /// The largest message this producer sends (its `message.max.bytes`).
    public let messageLimit: MessageSizeLimit

    /// Batching defaults: a few milliseconds of linger lets a burst of tasks travel
    /// in large produce requests while a single streamed line still leaves at once.
    static let defaults: [String: String] = [
        "linger.ms": "2",
        "batch.num.messages": "10000",
        "queue.buffering.max.messages": "1000000",
        "message.timeout.ms": "30000",
        "acks": "all",
        // Topics are created explicitly, with the partition count the user asked for.
        "allow.auto.create.topics": "false",
    ]

    public init(settings: YADTQSettings, clientID: String) throws {
        let ledger = DeliveryLedger()
        self.ledger = ledger
        messageLimit = MessageSizeLimit(kafkaOverrides: settings.kafkaOverrides)
        var defaults = Self.defaults
        defaults["client.id"] = clientID
        client = try RDKafkaClient(
            kind: .producer, brokers: settings.brokers, defaults: defaults, overrides: settings.kafkaOverrides
        ) { conf in
            rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(ledger).toOpaque())
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
                guard let message, let opaque else { return }
                let ledger = Unmanaged<DeliveryLedger>.fromOpaque(opaque).takeUnretainedValue()
                ledger.settle(token: UInt(bitPattern: message.pointee._private), error: message.pointee.err)
            }
        }
    }

    deinit {
        rd_kafka_flush(client.handle, 5000)
        for topic in topics.values { rd_kafka_topic_destroy(topic) }
    }

    /// Produces every message and waits until each is acknowledged or has failed.
    /// - Returns: the failed messages' indexes with the reason.
    public func produce(topic: String, _ messages: [OutgoingMessage], timeout: Duration = .seconds(60)) throws
        -> [Int: DeliveryFailure]
    {
        guard !messages.isEmpty else { return [:] }
        lock.lock()
        defer { lock.unlock() }
        let topicHandle = try handle(for: topic)
        let generation = ledger.start(count: messages.count)
        var pending = Array(messages.indices)
        while !pending.isEmpty {
            let rejected = enqueue(topicHandle, messages, pending, generation: generation)
            pending = []
            for (index, error) in rejected {
                if error == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                    pending.append(index)
                } else {
                    ledger.settle(index: index, error: error)
                }
            }
            // A full local queue drains as deliveries are acknowledged.
            if !pending.isEmpty { rd_kafka_poll(client.handle, 10) }
        }
        // Flushed in short slices until this batch is settled, not until librdkafka's queue is
        // empty: a message produce_batch refuses for a partition the topic lacks stays counted
        // in that queue (librdkafka frees it only at exit), and one whole flush would then wait
        // out its full timeout for a batch whose every message already has its answer.
        let deadline = ContinuousClock.now + timeout
        while !ledger.isSettled, ContinuousClock.now < deadline {
            rd_kafka_flush(client.handle, 10)
        }
        return ledger.finish(unsettledReason: "not acknowledged by the broker within \(timeout)")
    }

    /// Hands messages to librdkafka in one call; returns those it did not accept.
    private func enqueue(_ topic: OpaquePointer, _ messages: [OutgoingMessage], _ indexes: [Int], generation: UInt)
        -> [(Int, rd_kafka_resp_err_t)]
    {
        var batch = [rd_kafka_message_t](repeating: rd_kafka_message_t(), count: indexes.count)
        // Keys and values laid end to end in one buffer; librdkafka copies them
        // (RD_KAFKA_MSG_F_COPY), so they only need to live for the duration of the call.
        var bytes: [UInt8] = []
        var offsets: [Int] = []
        offsets.reserveCapacity(indexes.count * 2)
        for index in indexes {
            offsets.append(bytes.count)
            bytes.append(contentsOf: messages[index].value)
            offsets.append(bytes.count)
            bytes.append(contentsOf: messages[index].key)
        }
        bytes.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress ?? UnsafeMutableRawPointer(bitPattern: 1)!
            for (slot, index) in indexes.enumerated() {
                let message = messages[index]
                batch[slot].partition = message.partition
                // The delivery report carries this token back: a late report of an earlier
                // batch (one that timed out) names another generation and is ignored.
                batch[slot]._private = UnsafeMutableRawPointer(bitPattern: DeliveryLedger.token(generation, index))
                batch[slot].payload = base + offsets[slot * 2]
                batch[slot].len = message.value.count
                batch[slot].key = message.key.isEmpty ? nil : base + offsets[slot * 2 + 1]
                batch[slot].key_len = message.key.count
            }
            _ = rd_kafka_produce_batch(
                topic, 0, RD_KAFKA_MSG_F_COPY | RD_KAFKA_MSG_F_PARTITION, &batch, Int32(indexes.count))
        }
        return batch.indices.compactMap { slot in
            batch[slot].err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : (indexes[slot], batch[slot].err)
        }
    }

    private func handle(for topic: String) throws -> OpaquePointer {
        if let existing = topics[topic] { return existing }
        guard let created = rd_kafka_topic_new(client.handle, topic, nil) else {
            throw KafkaFailure.error(rd_kafka_last_error(), "cannot open topic \(topic) for producing")
        }
        topics[topic] = created
        return created
    }
}

/// Collects the delivery reports of the batch in flight. Each message carries an opaque
/// token, its batch's generation and its index, so a report of an earlier batch that
/// arrives late (after that batch's flush timed out) settles nothing of the current one.
private final class DeliveryLedger: @unchecked Sendable {
    // @unchecked Sendable: used only by KafkaProducer while it holds its lock
    // (callbacks are served inside calls made under that lock).
    private var generation: UInt = 0
    private var outstanding = 0
    private var settled: [Bool] = []
    private var failures: [Int: DeliveryFailure] = [:]

    /// Index bits of a token; the generation takes the rest (it wraps harmlessly).
    private static let indexBits: UInt = 24

    static func token(_ generation: UInt, _ index: Int) -> UInt {
        generation << indexBits | UInt(index)
    }

    /// Starts a batch of `count` messages; returns its generation.
    func start(count: Int) -> UInt {
        precondition(count < 1 << Self.indexBits, "a batch of at most 16,777,215 messages")
        generation = (generation + 1) & (UInt.max >> Self.indexBits)
        outstanding = count
        settled = [Bool](repeating: false, count: count)
        failures = [:]
        return generation
    }

    func settle(token: UInt, error: rd_kafka_resp_err_t) {
        guard token >> Self.indexBits == generation else { return }
        settle(index: Int(token & (1 << Self.indexBits - 1)), error: error)
    }

    func settle(index: Int, error: rd_kafka_resp_err_t) {
        guard settled.indices.contains(index), !settled[index] else { return }
        settled[index] = true
        outstanding -= 1
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            failures[index] = DeliveryFailure(error)
        }
    }

    /// Every message of the batch has its answer.
    var isSettled: Bool { outstanding == 0 }

    func finish(unsettledReason: String) -> [Int: DeliveryFailure] {
        if outstanding > 0 {
            for index in settled.indices where !settled[index] {
                failures[index] = DeliveryFailure(unsettled: unsettledReason)
            }
        }
        return failures
    }
}
