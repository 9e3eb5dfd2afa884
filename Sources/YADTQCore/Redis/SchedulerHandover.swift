extension TaskStore {
    /// How long a topic's handover outlives its last write: a week, like its end state
    /// (``recordEndPublished(topic:marker:partitions:at:)``), so that the topics of past runs do
    /// not pile up. The scheduler writes it again at least hourly while it runs.
    private static let handoverSeconds = 7 * 24 * 3600

    /// The field of `ends:<topic>` that holds ``LostTaskRule/Handover/lookedTo``; the others are
    /// partitions. Older builds read only the partitions (a name that is no number is skipped),
    /// and write the hash whole without it.
    private static let lookedToField = "looked_to"

    /// What the scheduler of `topic` last kept for the next one (see
    /// ``LostTaskRule/handoverToStore(now:)``); empty when nothing is kept.
    public func handover(of topic: String) throws -> LostTaskRule.Handover {
        let reply = try client.execute(
            RedisCommand("HGETALL", keys.topicEnds(topic: topic)), or: "Reading the scheduler's handover for \(topic)")
        var handover = LostTaskRule.Handover()
        for (field, value) in Self.fieldPairs(of: reply.elements) {
            if field == Self.lookedToField {
                handover.lookedTo = Int64(value)
            } else if let partition = Int32(field), let end = Int64(value) {
                handover.ends[partition] = end
            }
        }
        return handover
    }

    /// Keeps `handover` for the next scheduler of `topic`, in place of what was kept before: a
    /// topic made again with fewer partitions leaves none of its old ones, and a handover with
    /// no ``LostTaskRule/Handover/lookedTo`` leaves none of an earlier one.
    /// One key, a plain one like `end:<topic>`: on a Redis Cluster it lives on the master of
    /// its own slot, and the script's one declared key routes the call there.
    public func storeHandover(_ handover: LostTaskRule.Handover, of topic: String) throws {
        var arguments = RedisCommand(String(Self.handoverSeconds))
        for (partition, end) in handover.ends.sorted(by: { $0.key < $1.key }) {
            arguments.append(partition)
            arguments.append(end)
        }
        if let lookedTo = handover.lookedTo {
            arguments.append(Self.lookedToField)
            arguments.append(lookedTo)
        }
        _ = try client.evaluate(Self.replaceHandover, keys: [keys.topicEnds(topic: topic)], arguments: arguments)
    }

    /// KEYS: the topic's handover. ARGV: seconds to keep it, then field, value pairs. Replaces
    /// the hash whole, in one step, so that a scheduler taking over never reads it half written.
    private static let replaceHandover = RedisScript(
        name: "topic_ends",
        source: """
            redis.call('DEL', KEYS[1])
            for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
            redis.call('EXPIRE', KEYS[1], ARGV[1])
            return 0
            """)
}
