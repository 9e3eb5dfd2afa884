/// The state of the latest `end` marker of a topic: which partitions have
/// drained up to it. Workers and the monitor exit once every partition has.
public struct EndOfStream: Sendable, Equatable {
    public var marker: String
    /// Milliseconds since the epoch.
    public var publishedAt: Int64
    public var partitions: Int
    public var reached: Int

    public init(marker: String, publishedAt: Int64, partitions: Int, reached: Int) {
        self.marker = marker
        self.publishedAt = publishedAt
        self.partitions = partitions
        self.reached = reached
    }

    public var isComplete: Bool { reached >= partitions }
}

extension TaskStore {
    private func endKey(_ topic: String) -> String { keys.end(topic: topic) }
    private func reachedKey(_ topic: String, _ marker: String) -> String { keys.endReached(topic: topic, marker: marker) }
    /// How long a topic's end state is kept after its latest marker, in seconds: a week, so the
    /// end states of topics of the past (one per run, say) do not pile up.
    private static let endStateSeconds = String(7 * 24 * 3600)

    /// Records that an end marker was published to all `partitions` of `topic`.
    public func recordEndPublished(topic: String, marker: String, partitions: Int, at now: Int64) throws {
        let key = endKey(topic)
        _ = try client.execute(
            [
                RedisCommand("HSET", key, "marker", marker, "published_at", String(now), "partitions", String(partitions)),
                RedisCommand("EXPIRE", key, Self.endStateSeconds),
            ], or: "Recording the end marker of \(topic)")
    }

    /// Records that `partition` has drained up to the end marker. The worker commits the
    /// marker's offset next, after which no one reads it again: so, like a batch's terminal
    /// statuses, it waits for a replica on a cluster that has them.
    public func recordEndReached(topic: String, marker: String, partitions: [Int32]) throws {
        guard !partitions.isEmpty else { return }
        let key = reachedKey(topic, marker)
        var command = RedisCommand("SADD", key)
        for partition in partitions { command.append(partition) }
        // EXPIRE writes even when a replay's SADD adds nothing, so WAIT counts the call.
        _ = try client.execute(
            [command, RedisCommand("EXPIRE", key, Self.endStateSeconds)], or: "Recording the end reached on \(topic)",
            waitForReplicas: true)
    }

    /// The latest end marker of `topic`, or `nil` when none was ever published.
    public func endOfStream(topic: String) throws -> EndOfStream? {
        let fields = try client.execute(
            RedisCommand("HMGET", endKey(topic), "marker", "published_at", "partitions"), or: "Reading the end marker of \(topic)"
        ).elements
        guard fields.count == 3, let marker = fields[0].text, let publishedAt = fields[1].integer,
            let partitions = fields[2].integer
        else { return nil }
        let reached = try client.execute(RedisCommand("SCARD", reachedKey(topic, marker)), or: "Reading the end reached on \(topic)")
            .integer ?? 0
        return EndOfStream(marker: marker, publishedAt: publishedAt, partitions: Int(partitions), reached: Int(reached))
    }
}
