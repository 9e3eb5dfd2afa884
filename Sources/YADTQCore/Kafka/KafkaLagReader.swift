import CRdKafka
import Foundation

/// How far a consumer group is behind on one partition.
public struct PartitionLag: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    /// The group's committed offset; `nil` when it never committed on this partition.
    public var committed: Int64?
    /// The offset the next message on the partition will get (the high watermark).
    public var end: Int64
    /// Messages between the committed offset (or the partition's start) and its end.
    public var lag: Int64

    public init(topic: String, partition: Int32, committed: Int64?, start: Int64, end: Int64) {
        self.topic = topic
        self.partition = partition
        self.committed = committed
        self.end = end
        // With no commit the group starts at the partition's start (auto.offset.reset=earliest).
        lag = max(0, end - (committed ?? start))
    }
}

/// Reads a consumer group's lag from the broker: its committed offsets and each
/// partition's watermarks. It joins no group, so it never takes a worker's partitions.
///
/// - Important: Every call blocks on the broker (up to its timeout); call it from a
///   dedicated thread or a dispatch queue, never from Swift's cooperative pool.
public final class KafkaLagReader: Sendable {
    private let client: RDKafkaClient
    private let timeout: Duration

    public init(settings: YADTQSettings, timeout: Duration = .seconds(5)) throws {
        var defaults = KafkaConsumer.defaults
        defaults["group.id"] = settings.group
        defaults["client.id"] = "yadtq-lag-reader"
        client = try RDKafkaClient(
            kind: .consumer, brokers: settings.brokers, defaults: defaults, overrides: settings.kafkaOverrides)
        self.timeout = timeout
    }

    /// The group's lag on every partition of `topic`, by partition; empty when the topic
    /// does not exist yet.
    public func lag(topic: String) throws -> [PartitionLag] {
        guard let count = try client.partitionCount(topic: topic, timeout: timeout), count > 0 else { return [] }
        let partitions = (0..<Int32(count)).map { $0 }
        let list = RDKafkaTopicPartitionList(topic: topic, partitions: partitions)
        let milliseconds = Int32(timeout.inMilliseconds)
        let error = list.withPointer { rd_kafka_committed(client.handle, $0, milliseconds) }
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaFailure.error(error, "cannot read the committed offsets of group on topic \(topic)")
        }
        let committed = list.offsets
        return try partitions.map { partition in
            var low: Int64 = 0
            var high: Int64 = 0
            let error = rd_kafka_query_watermark_offsets(client.handle, topic, partition, &low, &high, milliseconds)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaFailure.error(error, "cannot read the end offsets of \(topic) partition \(partition)")
            }
            let offset = committed[partition] ?? -1
            return PartitionLag(
                topic: topic, partition: partition, committed: offset >= 0 ? offset : nil, start: low, end: high)
        }
    }
}
