import CRdKafka

/// Owns one `rd_kafka_topic_partition_list_t`, freed in `deinit`.
///
/// - Important: The list's pointer is lent only inside ``withPointer(_:)``; it must not
///   escape the closure.
final class RDKafkaTopicPartitionList {
    private let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    /// A list of `partitions` of `topic`, each with an invalid offset.
    convenience init(topic: String, partitions: [Int32]) {
        self.init(topic: topic, offsets: partitions.map { ($0, nil) })
    }

    /// A list of the partitions of `topic` with the offset each is to be committed at.
    convenience init(topic: String, offsets: [Int32: Int64]) {
        self.init(topic: topic, offsets: offsets.map { ($0.key, $0.value) })
    }

    /// The list `rd_kafka_subscribe` takes: the topic alone, with no partition
    /// (`RD_KAFKA_PARTITION_UA`, -1, a macro Swift does not import).
    static func subscription(to topic: String) -> RDKafkaTopicPartitionList {
        RDKafkaTopicPartitionList(topic: topic, partitions: [-1])
    }

    private init(topic: String, offsets: [(partition: Int32, offset: Int64?)]) {
        list = rd_kafka_topic_partition_list_new(Int32(max(1, offsets.count)))
        for (partition, offset) in offsets {
            let element = rd_kafka_topic_partition_list_add(list, topic, partition)
            if let offset { element?.pointee.offset = offset }
        }
    }

    deinit { rd_kafka_topic_partition_list_destroy(list) }

    func withPointer<T>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> T) rethrows -> T {
        try body(list)
    }

    /// Partition -> offset as the list holds them now (negative: no offset, e.g. nothing committed).
    var offsets: [Int32: Int64] {
        var offsets: [Int32: Int64] = [:]
        for element in Self.elements(of: list) {
            offsets[element.partition] = element.err == RD_KAFKA_RESP_ERR_NO_ERROR ? element.offset : -1
        }
        return offsets
    }

    /// The elements of a list this type does not own, e.g. one librdkafka lends to a
    /// rebalance or commit callback for the length of the call.
    static func elements(of list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [rd_kafka_topic_partition_t] {
        (0..<Int(list.pointee.cnt)).map { list.pointee.elems[$0] }
    }
}
