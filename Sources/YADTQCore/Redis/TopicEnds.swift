extension TaskStore {
    /// How long a topic's kept end offsets outlive their last write: a week, like its end
    /// state (``recordEndPublished(topic:marker:partitions:at:)``), so that the topics of past
    /// runs do not pile up. The scheduler writes them again at least hourly while it runs.
    private static let topicEndsSeconds = 7 * 24 * 3600

    /// The end offset of each partition of `topic` as its scheduler last kept it (see
    /// ``LostTaskRule/endsToStore(now:)``); empty when none is kept.
    public func storedEnds(of topic: String) throws -> [Int32: Int64] {
        let reply = try client.execute(
            RedisCommand("HGETALL", keys.topicEnds(topic: topic)), or: "Reading the end offsets kept for \(topic)")
        var ends: [Int32: Int64] = [:]
        for (partition, end) in Self.fieldPairs(of: reply.elements) {
            if let partition = Int32(partition), let end = Int64(end) { ends[partition] = end }
        }
        return ends
    }

    /// Keeps `ends` (partition -> end offset) as the end offsets of `topic`, in place of those
    /// kept before: a topic made again with fewer partitions leaves none of its old ones.
    /// One key, a plain one like `end:<topic>`: on a Redis Cluster it lives on the master of
    /// its own slot, and the script's one declared key routes the call there.
    public func storeEnds(_ ends: [Int32: Int64], of topic: String) throws {
        var arguments = RedisCommand(String(Self.topicEndsSeconds))
        for (partition, end) in ends.sorted(by: { $0.key < $1.key }) {
            arguments.append(partition)
            arguments.append(end)
        }
        _ = try client.evaluate(Self.replaceEnds, keys: [keys.topicEnds(topic: topic)], arguments: arguments)
    }

    /// KEYS: the topic's ends. ARGV: seconds to keep them, then partition, end pairs. Replaces
    /// the hash whole, in one step, so that a scheduler taking over never reads it half written.
    private static let replaceEnds = RedisScript(
        name: "topic_ends",
        source: """
            redis.call('DEL', KEYS[1])
            for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
            redis.call('EXPIRE', KEYS[1], ARGV[1])
            return 0
            """)
}
