/// Rule: a worker commits an offset only after every task up to it is terminal in Redis.
///
/// Tracks which consumed offsets are finished, per partition, so a worker commits
/// only up to the last offset below which every task is terminal in Redis, even
/// when tasks finish out of order.
public struct OffsetWatermark: Sendable {
    private var inFlight: [Int32: Set<Int64>] = [:]
    private var highestSeen: [Int32: Int64] = [:]
    private var committed: [Int32: Int64] = [:]

    public init() {}

    /// Records a consumed message that is not finished yet.
    /// - Rule: offsets that go back (a log truncated under the worker, or its position reset
    ///   when its offset left the log) start the partition's watermark again: counting what
    ///   was tracked in the log before would commit past the messages read now.
    public mutating func track(partition: Int32, offset: Int64) {
        if let highest = highestSeen[partition], offset <= highest {
            inFlight[partition] = []
            highestSeen[partition] = nil
            committed[partition] = nil
        }
        inFlight[partition, default: []].insert(offset)
        highestSeen[partition] = max(highestSeen[partition] ?? offset, offset)
    }

    /// Records that the message at `offset` is finished (its task is terminal in Redis).
    public mutating func complete(partition: Int32, offset: Int64) {
        inFlight[partition]?.remove(offset)
    }

    /// The next offset to read per partition (the Kafka commit convention), for the
    /// partitions (of `only`, when given) whose watermark moved since it was last taken, or
    /// with `again` for every one of them, moved or not; marks them committed.
    public mutating func takeCommittable(only: Set<Int32>? = nil, again: Bool = false) -> [Int32: Int64] {
        var result: [Int32: Int64] = [:]
        for (partition, highest) in highestSeen where only?.contains(partition) ?? true {
            let next = inFlight[partition]?.min() ?? highest + 1
            if again || next > committed[partition] ?? Int64.min {
                result[partition] = next
                committed[partition] = next
            }
        }
        return result
    }

    /// The partitions with tracked messages.
    public var partitions: [Int32] { Array(highestSeen.keys) }

    /// Whether any tracked message is still unfinished.
    public var hasUnfinished: Bool { inFlight.values.contains { !$0.isEmpty } }

    /// Forgets partitions this worker no longer owns: their unfinished messages
    /// belong to the next owner now, who will redeliver them.
    public mutating func forget(partitions: some Sequence<Int32>) {
        for partition in partitions {
            inFlight[partition] = nil
            highestSeen[partition] = nil
            committed[partition] = nil
        }
    }
}
