/// The largest task message the producer sends: librdkafka's `message.max.bytes`, 1,000,000
/// unless `YADTQ_KAFKA_MESSAGE_MAX_BYTES` sets it. A larger task is refused before anything is
/// written: librdkafka would refuse it at the publish ("Message size too large"), after it was
/// QUEUED in Redis, and it would end FAILED.
public struct MessageSizeLimit: Sendable, Equatable {
    /// librdkafka's default `message.max.bytes`.
    public static let librdkafkaDefault = 1_000_000
    /// The record framing librdkafka counts in a message's size besides its key and value
    /// (its `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`: length, attributes, timestamp and offset
    /// deltas, key and value lengths, header count, as varints at their longest).
    static let recordOverhead = 36

    public let maximumBytes: Int

    public init(maximumBytes: Int = librdkafkaDefault) {
        self.maximumBytes = maximumBytes
    }

    /// The limit the producer is configured with (see ``YADTQSettings/kafkaOverrides``).
    public init(kafkaOverrides: [String: String]) {
        self.init(maximumBytes: kafkaOverrides["message.max.bytes"].flatMap { Int($0) } ?? Self.librdkafkaDefault)
    }

    /// Why a task message with this key and value cannot be sent, or `nil` when it fits;
    /// its size is counted as librdkafka counts it.
    public func refusal(keyBytes: Int, valueBytes: Int) -> String? {
        let size = keyBytes + valueBytes + Self.recordOverhead
        guard size > maximumBytes else { return nil }
        return "task is \(size) bytes as a message; at most \(maximumBytes) (the producer's message.max.bytes, "
            + "YADTQ_KAFKA_MESSAGE_MAX_BYTES): make its arguments smaller, e.g. pass a reference to the data"
    }
}
