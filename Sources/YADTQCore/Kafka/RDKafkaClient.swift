import CRdKafka
import Foundation

/// One librdkafka client handle (`rd_kafka_t`), producer or consumer.
///
/// - Important: librdkafka handles are thread-safe, but the consumer calls
///   (`poll`, `commit`, `close`) block; they run on the worker's own thread.
final class RDKafkaClient: @unchecked Sendable {
    // @unchecked Sendable: librdkafka documents rd_kafka_t as safe to use from any
    // thread; this class adds no mutable state of its own.
    let handle: OpaquePointer
    private let kind: Kind

    enum Kind { case producer, consumer }

    /// Creates the handle from YADTQ's defaults for this `kind`, then the operator's
    /// `YADTQ_KAFKA_*` overrides, so every property can be changed without a rebuild.
    /// A default the loaded librdkafka does not know is left out (older versions lack newer
    /// tuning properties); an override it does not know is an error.
    init(
        kind: Kind, brokers: String, defaults: [String: String], overrides: [String: String],
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws {
        guard let conf = rd_kafka_conf_new() else {
            throw YADTQError(.kafka, "cannot allocate a librdkafka configuration")
        }
        for (key, value, isOverride) in KafkaProperties.ordered(defaults: defaults, brokers: brokers, overrides: overrides) {
            var errorText = [CChar](repeating: 0, count: 512)
            let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
            if result == RD_KAFKA_CONF_UNKNOWN && !isOverride { continue }
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw YADTQError(
                    .configuration, "librdkafka rejected the setting \(key)=\(value)",
                    libraryMessage: String(errorBuffer: errorText),
                    remedy: "Fix or remove the YADTQ_KAFKA_* variable that sets it")
            }
        }
        KafkaLog.configure(conf)
        configure(conf)
        var errorText = [CChar](repeating: 0, count: 512)
        // rd_kafka_new takes ownership of conf only when it succeeds.
        guard let handle = rd_kafka_new(kind == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, &errorText, errorText.count)
        else {
            rd_kafka_conf_destroy(conf)
            throw YADTQError(
                .kafka, "cannot create a Kafka \(kind == .producer ? "producer" : "consumer")",
                libraryMessage: String(errorBuffer: errorText), remedy: "Check YADTQ_BROKERS and the YADTQ_KAFKA_* settings")
        }
        self.handle = handle
        self.kind = kind
    }

    /// A consumer is not closed here: rd_kafka_destroy would leave its group with no time
    /// limit, and a broker that does not answer would hold the process. ``KafkaConsumer``
    /// leaves with a bound of its own first; the lag reader never joins a group.
    deinit { rd_kafka_destroy_flags(handle, kind == .consumer ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0) }

    /// The librdkafka version actually loaded at run time (it may differ from the headers).
    static var libraryVersion: String { String(cString: rd_kafka_version_str()) }

    /// The partition count of `topic`, or `nil` when the broker does not know the topic.
    func partitionCount(topic: String, timeout: Duration = .seconds(10)) throws -> Int? {
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaFailure.error(rd_kafka_last_error(), "cannot create a handle for topic \(topic)")
        }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle, 0, topicHandle, &metadata, Int32(timeout.inMilliseconds))
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaFailure.error(error, "cannot read the metadata of topic \(topic)")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else { return nil }
        let topicMetadata = metadata.pointee.topics[0]
        if topicMetadata.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || topicMetadata.partition_cnt == 0 {
            return nil
        }
        guard topicMetadata.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaFailure.error(topicMetadata.err, "topic \(topic) is not usable")
        }
        return Int(topicMetadata.partition_cnt)
    }

    /// Creates `topic` with `partitions` partitions unless it exists. Uses the broker's
    /// default replication factor, so the same call suits a one-node broker and a cluster.
    func createTopic(_ topic: String, partitions: Int, timeout: Duration = .seconds(15)) throws {
        var errorText = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(topic, Int32(partitions), -1, &errorText, errorText.count) else {
            throw YADTQError(
                .kafka, "cannot describe topic \(topic) with \(partitions) partitions",
                libraryMessage: String(errorBuffer: errorText), remedy: "Use a topic name of letters, digits, '.', '_' and '-'")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        guard let resultQueue = rd_kafka_queue_new(handle) else {
            throw YADTQError(.kafka, "cannot allocate a librdkafka queue")
        }
        defer { rd_kafka_queue_destroy(resultQueue) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(handle, &topics, 1, nil, resultQueue)
        guard let event = rd_kafka_queue_poll(resultQueue, Int32(timeout.inMilliseconds)) else {
            throw YADTQError(
                .kafka, "the broker did not answer the request to create topic \(topic) within \(timeout)",
                libraryCode: RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue, remedy: "Check that a broker is running at YADTQ_BROKERS")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaFailure.error(eventError, "cannot create topic \(topic)", detail: rd_kafka_event_error_string(event))
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for index in 0..<count {
            let error = rd_kafka_topic_result_error(results[index])
            if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                throw KafkaFailure.error(
                    error, "cannot create topic \(topic)", detail: rd_kafka_topic_result_error_string(results[index]))
            }
        }
    }

    /// Makes sure `topic` exists, creating it when missing; returns its partition count.
    func ensureTopic(_ topic: String, partitions: Int) throws -> Int {
        if let count = try partitionCount(topic: topic) { return count }
        try createTopic(topic, partitions: partitions)
        // Metadata can lag the creation by a moment on some brokers.
        for _ in 0..<50 {
            if let count = try partitionCount(topic: topic) { return count }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw YADTQError(.kafka, "topic \(topic) was created but the broker does not list it", remedy: "Check the broker's log")
    }
}

/// The librdkafka properties of a client, in the order they are set: YADTQ's defaults and the
/// brokers first, then the operator's `YADTQ_KAFKA_*` overrides. librdkafka has aliases
/// (`delivery.timeout.ms` is `message.timeout.ms`, `linger.ms` is `queue.buffering.max.ms`):
/// set in one pass sorted by name, a default under one name came after an override under the
/// other and silently undid it.
public enum KafkaProperties {
    public static func ordered(defaults: [String: String], brokers: String, overrides: [String: String])
        -> [(key: String, value: String, isOverride: Bool)]
    {
        var own = defaults
        own["bootstrap.servers"] = brokers
        let kept = own.filter { overrides[$0.key] == nil }.sorted { $0.key < $1.key }.map { ($0.key, $0.value, false) }
        return kept + overrides.sorted { $0.key < $1.key }.map { ($0.key, $0.value, true) }
    }
}

/// Builds ``YADTQError``s from librdkafka error codes.
enum KafkaFailure {
    static func error(_ code: rd_kafka_resp_err_t, _ message: String, detail: UnsafePointer<CChar>? = nil) -> YADTQError {
        let libraryMessage = detail.map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(code))
        return YADTQError(
            .kafka, message, libraryCode: code.rawValue, libraryMessage: libraryMessage,
            remedy: remedy(for: code))
    }

    /// The error of a librdkafka call that returns an `rd_kafka_error_t`, which it frees.
    static func taking(_ error: OpaquePointer, _ message: String) -> YADTQError {
        defer { rd_kafka_error_destroy(error) }
        return Self.error(rd_kafka_error_code(error), message, detail: rd_kafka_error_string(error))
    }

    static func remedy(for code: rd_kafka_resp_err_t) -> String {
        switch code {
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TIMED_OUT,
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__WAIT_COORD:
            "Check that a broker is running at YADTQ_BROKERS (scripts/stack up starts one)"
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
            "Create the topic first (yadtq-run creates it) or check YADTQ_TOPIC"
        case RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
            "Check the YADTQ_KAFKA_SASL_* settings"
        default:
            "See the broker's log; YADTQ_KAFKA_DEBUG=broker,protocol with --log-level debug shows librdkafka's side"
        }
    }
}

