// How long the oldest QUEUED task has waited, for the queue metrics.

extension TaskStore {
    /// The `queued_at` (ms since the epoch) of the oldest QUEUED task among the newest
    /// `scanLimit` tasks of each shard, or `nil` when none is QUEUED there. Each shard stops
    /// early once it has seen as many QUEUED tasks as its counter holds, so a queue whose
    /// waiting tasks are recent (the usual case) costs a few reads.
    public func oldestQueuedAt(scanLimit: Int = 5_000) throws -> Int64? {
        let calls = keys.allShards.map { shard in
            RedisClient.ScriptCall(
                script: Self.oldestQueuedScript, keys: [shard.tasks, shard.counts],
                arguments: RedisCommand(shard.taskPrefix, TaskStatus.queued.rawValue, String(scanLimit)))
        }
        return try client.evaluate(calls).compactMap { reply -> Int64? in
            if let message = reply.errorMessage {
                throw YADTQError(.redis, "Redis refused the oldest-queued read", libraryMessage: message)
            }
            return reply.integer.flatMap { $0 >= 0 ? $0 : nil }
        }.min()
    }

    /// KEYS: a shard's task listing (by queued_at) and its status counters. ARGV: the shard's
    /// task hash prefix, the QUEUED status, the scan limit. Returns the oldest QUEUED task's
    /// queued_at, or -1.
    private static let oldestQueuedScript = RedisScript(
        name: "oldest_queued",
        source: """
            local queued = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
            local oldest, seen, limit = -1, 0, tonumber(ARGV[3])
            local start = 0
            while queued > seen and start < limit do
              local page = redis.call('ZREVRANGE', KEYS[1], start, start + 499, 'WITHSCORES')
              if #page == 0 then break end
              for i = 1, #page, 2 do
                if redis.call('HGET', ARGV[1] .. page[i], 'status') == ARGV[2] then
                  seen = seen + 1
                  oldest = tonumber(page[i + 1])
                end
              end
              start = start + 500
            end
            return oldest
            """)
}
