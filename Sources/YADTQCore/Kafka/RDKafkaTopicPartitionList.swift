import CRdKafka

/// Owns one `rd_kafka_topic_partition_list_t`, freed in `deinit`.
///
/// - Important: The list's pointer is lent only inside ``withPointer(_:)``; it must not
///   escape the closure.
final class RDKafkaTopicPartitionList {
    private let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    /// A list of `partitions` of `topic`, each with an invalid offset.
    init(topic: String, partitions: [Int32]) {
        list = rd_kafka_topic_partition_list_new(Int32(max(1, partitions.count)))
        for partition in partitions { rd_kafka_topic_partition_list_add(list, topic, partition) }
    }

    deinit { rd_kafka_topic_partition_list_destroy(list) }

    func withPointer<T>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> T) rethrows -> T {
        try body(list)
    }

    /// Partition -> offset as the list holds them now (negative: no offset, e.g. nothing committed).
    var offsets: [Int32: Int64] {
        var offsets: [Int32: Int64] = [:]
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            offsets[element.partition] = element.err == RD_KAFKA_RESP_ERR_NO_ERROR ? element.offset : -1
        }
        return offsets
    }
}
