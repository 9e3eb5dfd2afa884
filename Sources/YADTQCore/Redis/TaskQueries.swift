import Foundation

// The reads behind the web page and its JSON API: filtered pages of tasks, worker
// heartbeats, throughput, and the web's login sessions. Every read uses the
// indexes and counters the task scripts maintain (`tasks`, `type:<type>`,
// `index:PROCESSING`, `index:FAILED`, `counts`, `stats:<second>`), never a key scan,
// and costs one or two round trips.

extension TaskStore {
    /// One page of tasks, newest first.
    public struct TaskPage: Sendable {
        /// The tasks on this page, newest first.
        public var records: [TaskRecord]
        /// Where the next (older) page starts; `nil` on the last page.
        public var nextCursor: String?
        /// How many tasks match the filter in all (an upper bound when both a status and
        /// a type are given).
        public var total: Int
    }

    /// Why a page cursor was refused.
    public struct InvalidCursor: Error, CustomStringConvertible, Sendable {
        public var cursor: String
        public var description: String {
            "invalid cursor '\(cursor)': pass back the next_cursor of a previous page, or leave it out for the newest tasks"
        }
    }

    /// The newest tasks with a status and/or of a type.
    ///
    /// PROCESSING and FAILED have an index of their own, which is walked. QUEUED and
    /// SUCCESS have only a counter (an index member added and removed per task was most
    /// of Redis's work per task), so for them, as for any status combined with a type,
    /// `tasks` (or `type:<type>`) is walked newest first and each id's status checked
    /// inside Redis, at most `scanLimit` ids per call: a page may then come back short,
    /// with a cursor to continue from.
    ///
    /// A cursor counts positions from the oldest end of the walked index, so the pages
    /// of the `tasks` and `type:<type>` indexes stay put while new tasks arrive on top.
    /// - Parameters:
    ///   - cursor: `nil` for the newest page, else a previous page's ``TaskPage/nextCursor``.
    ///   - limit: tasks per page.
    public func taskPage(
        status: TaskStatus?, type: String?, cursor: String?, limit: Int, scanLimit: Int = 5000
    ) throws -> TaskPage {
        let end: Int?
        if let cursor {
            guard let position = Int(cursor), position >= 0 else { throw InvalidCursor(cursor: cursor) }
            end = position
        } else {
            end = nil
        }
        var walked = type.map(keys.type) ?? keys.tasks
        var filter = status?.rawValue ?? ""
        if let status, type == nil, Self.indexedStatuses.contains(status) {
            walked = keys.index(status)
            filter = ""
        }
        // A status alone is counted exactly by its counter; otherwise the walked index's size is the total.
        let counted = type == nil ? status?.rawValue ?? "" : ""
        let arguments = RedisCommand(
            walked, filter, end.map(String.init) ?? "", String(limit), String(scanLimit), keys.taskPrefix, keys.counts,
            counted)
        let reply = try client.evaluate(Self.pageScript, arguments: arguments).elements
        guard reply.count >= 2, let next = reply[0].integer, let total = reply[1].integer else {
            throw YADTQError(.redis, "script task_page answered an unexpected reply", remedy: "This is a YADTQ bug; please report it")
        }
        let ids = reply.dropFirst(2).compactMap(\.text)
        let records = try ids.isEmpty ? [] : self.records(ids: ids).compactMap { $0 }
        return TaskPage(records: records, nextCursor: next > 0 ? String(next) : nil, total: Int(total))
    }

    /// The statuses with an `index:<STATUS>` zset of their own (see ``TaskScripts``).
    static let indexedStatuses: Set<TaskStatus> = [.processing, .failed]

    /// ARGV: walked zset, status to keep (or '' for all), end position (exclusive, from
    /// the oldest end; '' for the newest page), limit, scan limit, task key prefix, counts
    /// hash, status whose count is the total (or '' for the walked index's size).
    /// Returns the next end position (0 when there is nothing older), the total, then the
    /// ids, newest first.
    private static let pageScript = RedisScript(
        name: "task_page",
        source: """
            local walked, filter = ARGV[1], ARGV[2]
            local limit, budget, task = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
            local total = redis.call('ZCARD', walked)
            local position = total
            if ARGV[3] ~= '' then position = math.min(tonumber(ARGV[3]), total) end
            local ids, scanned = {}, 0
            while position > 0 and #ids < limit and scanned < budget do
              local count = filter == '' and (limit - #ids) or math.min(500, budget - scanned)
              local from = math.max(0, position - count)
              local chunk = redis.call('ZRANGE', walked, from, position - 1)
              for i = #chunk, 1, -1 do
                position = from + i - 1
                scanned = scanned + 1
                if filter == '' or redis.call('HGET', task .. chunk[i], 'status') == filter then
                  ids[#ids + 1] = chunk[i]
                  if #ids == limit then break end
                end
              end
            end
            if ARGV[8] ~= '' then total = tonumber(redis.call('HGET', ARGV[7], ARGV[8]) or 0) end
            local out = {position, total}
            for _, id in ipairs(ids) do out[#out + 1] = id end
            return out
            """)

    /// How many tasks of each type there are, from the type indexes.
    public func typeCounts(_ types: [String]) throws -> [String: Int] {
        let replies = try client.execute(types.map { RedisCommand("ZCARD", keys.type($0)) })
        return Dictionary(uniqueKeysWithValues: zip(types, replies.map { Int($0.integer ?? 0) }))
    }

    /// A task's record and the raw fields of its hash (for fields newer than ``TaskRecord``,
    /// such as `partition`), or `nil` for an unknown id.
    public func taskDetail(id: String) throws -> (record: TaskRecord, fields: [String: String])? {
        let fields = Self.fieldPairs(of: try client.execute(RedisCommand("HGETALL", keys.task(id))))
        return TaskRecord(id: id, fields: fields).map { ($0, fields) }
    }

    // MARK: - Workers

    /// One worker as its heartbeat and the monitor describe it.
    public struct WorkerHeartbeat: Sendable {
        public var name: String
        /// The heartbeat document the worker wrote (`last_heartbeat`, `state`, `current_task`, ...),
        /// or `nil` when it is not valid JSON.
        public var heartbeat: JSONValue?
        /// The monitor's verdict (`ALIVE`, `DEAD`, `STUCK`), when a monitor has judged the worker.
        public var verdict: String?
    }

    /// Every worker that ever wrote a heartbeat or was judged by the monitor, by name.
    public func workerHeartbeats() throws -> [WorkerHeartbeat] {
        let replies = try client.execute([
            RedisCommand("HGETALL", keys.heartbeats), RedisCommand("HGETALL", keys.verdicts),
        ])
        let heartbeats = Self.fieldPairs(of: replies[0])
        let verdicts = Self.fieldPairs(of: replies[1])
        return Set(heartbeats.keys).union(verdicts.keys).sorted().map { name in
            WorkerHeartbeat(
                name: name, heartbeat: heartbeats[name].flatMap { try? JSONValue(parsing: $0) },
                verdict: verdicts[name])
        }
    }

    // MARK: - Throughput

    /// Finished tasks in one time bucket.
    public struct ThroughputBucket: Sendable, Equatable {
        /// The bucket's start, milliseconds since the epoch.
        public var start: Int64
        public var succeeded: Int
        public var failed: Int
    }

    /// Tasks that finished in each of the `buckets` last buckets of `bucketSeconds`,
    /// oldest first, from the per-second `stats:<second>` counters (kept an hour).
    public func throughput(buckets: Int, bucketSeconds: Int, now: Int64) throws -> [ThroughputBucket] {
        let lastSecond = Int(now / 1000)
        let firstBucket = lastSecond / bucketSeconds - buckets + 1
        let seconds = Array(firstBucket * bucketSeconds..<(lastSecond / bucketSeconds + 1) * bucketSeconds)
        let replies = try client.execute(
            seconds.map { RedisCommand("HMGET", keys.stats(second: Int64($0)), "succeeded", "failed") })
        var result = (0..<buckets).map {
            ThroughputBucket(start: Int64((firstBucket + $0) * bucketSeconds) * 1000, succeeded: 0, failed: 0)
        }
        for (second, reply) in zip(seconds, replies) {
            let values = reply.elements
            let bucket = second / bucketSeconds - firstBucket
            result[bucket].succeeded += Int(values.first?.integer ?? 0)
            result[bucket].failed += Int(values.dropFirst().first?.integer ?? 0)
        }
        return result
    }

    // MARK: - Web sessions

    /// Stores a new login session of the web page for `lifetime`; returns its id.
    /// Sessions live in Redis so a restarted or second web server honours them.
    public func createWebSession(lifetime: Duration) throws -> String {
        let id = (0..<4).map { _ in UInt64.random(in: .min ... .max) }.map { String($0, radix: 16) }.joined(separator: "-")
        _ = try client.execute(
            RedisCommand("SET", keys.webSession(id), "1", "EX", String(Int(lifetime.inSeconds))))
        return id
    }

    /// Whether `id` names a live login session.
    public func isWebSession(_ id: String) throws -> Bool {
        try client.execute(RedisCommand("EXISTS", keys.webSession(id))).integer == 1
    }

    /// Ends a login session.
    public func deleteWebSession(_ id: String) throws {
        _ = try client.execute(RedisCommand("DEL", keys.webSession(id)))
    }
}
