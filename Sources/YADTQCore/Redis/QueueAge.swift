// How long the oldest QUEUED task has waited, for the queue metrics.

extension TaskStore {
    /// The `queued_at` (ms since the epoch) of the oldest QUEUED task among the newest
    /// `scanLimit` tasks of each shard, or `nil` when none is QUEUED there. Each shard stops
    /// early once it has seen as many QUEUED tasks as its counter holds, so a queue whose
    /// waiting tasks are recent (the usual case) costs a few reads.
    public func oldestQueuedAt(scanLimit: Int = 5_000) throws -> Int64? {
        let calls = keys.allShards.map { shard in
            Self.call(Self.oldestQueuedScript, shard: shard, arguments: [String(scanLimit)]) { _ in }
        }
        return try client.evaluate(calls).compactMap { reply in reply.integer.flatMap { $0 >= 0 ? $0 : nil } }.min()
    }

    /// KEYS and first ARGV: a task script call's; then the scan limit. Returns the oldest
    /// QUEUED task's queued_at, or -1.
    private static let oldestQueuedScript = RedisScript(
        name: "oldest_queued",
        source: TaskScripts.listingWalk + """
            local queued = tonumber(redis.call('HGET', K.counts, 'QUEUED') or '0')
            local oldest, seen = -1, 0
            if queued > 0 then
              walk(nil, nil, tonumber(ARGV[A]), function(id, r)
                if r[F.status] ~= 'QUEUED' then return false end
                seen = seen + 1
                oldest = r[F.queued_at]
                return seen >= queued
              end)
            end
            return oldest
            """)
}
