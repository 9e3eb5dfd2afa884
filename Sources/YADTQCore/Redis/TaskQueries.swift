import Foundation

// The reads behind the web page and its JSON API: filtered pages of tasks, worker
// heartbeats, throughput, and the web's login sessions. Every read uses the
// indexes and counters the task scripts maintain (`tasks`, `index:PROCESSING`,
// `index:FAILED`, `counts`, `types`, `stats:<second>`), never a key scan, and costs one or
// two round trips per node.

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
    /// PROCESSING and FAILED have an index of their own, which is walked (checking each id's
    /// type when a type is asked for). QUEUED, SUCCESS and types have only counters (an index
    /// member added and removed per task was most of Redis's work per task), so for them
    /// `tasks` is walked newest first and each id's status and type checked inside Redis, at
    /// most `scanLimit` ids per shard and call: a page may then come back short, with a
    /// cursor to continue from.
    ///
    /// Each shard's index is walked on its own and the shards' candidates merged newest
    /// first. A cursor holds, per shard, a position counted from the oldest end of the
    /// walked index (`120`, or `120.0.37...` with several shards), so pages stay put while
    /// new tasks arrive on top.
    /// - Parameters:
    ///   - cursor: `nil` for the newest page, else a previous page's ``TaskPage/nextCursor``.
    ///   - limit: tasks per page.
    public func taskPage(
        status: TaskStatus?, type: String?, cursor: String?, limit: Int, scanLimit: Int = 5000
    ) throws -> TaskPage {
        var ends: [Int?] = Array(repeating: nil, count: keys.shards)
        if let cursor {
            let parts = cursor.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
            guard parts.count == keys.shards, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                throw InvalidCursor(cursor: cursor)
            }
            ends = parts
        }
        var statusFilter = status?.rawValue ?? ""
        var indexed: TaskStatus? = nil
        if let status, Self.indexedStatuses.contains(status) {
            indexed = status
            statusFilter = ""
        }
        // A status or a type alone is counted exactly by its counter; both together by the
        // walked index's size (an upper bound).
        let counter: (key: KeyPath<RedisKeys.Shard, String>, field: String)? =
            switch (status, type) {
            case (let status?, nil): (\.counts, status.rawValue)
            case (nil, let type?): (\.types, type)
            default: nil
            }
        let calls = keys.allShards.enumerated().map { number, shard in
            RedisClient.ScriptCall(
                script: Self.pageScript,
                keys: [indexed.map(shard.index) ?? shard.tasks, counter.map { shard[keyPath: $0.key] } ?? shard.counts],
                arguments: RedisCommand(
                    statusFilter, type ?? "", ends[number].map(String.init) ?? "", String(limit), String(scanLimit),
                    shard.taskPrefix, counter?.field ?? ""))
        }
        // Each shard's candidates: (id, position, queued_at), newest first.
        var candidates: [(id: String, shard: Int, position: Int, score: Double)] = []
        var scannedTo = [Int](repeating: 0, count: keys.shards)
        var total = 0
        for (number, reply) in try client.evaluate(calls).enumerated() {
            let values = reply.elements
            guard values.count >= 2, let next = values[0].integer, let count = values[1].integer,
                (values.count - 2) % 3 == 0
            else {
                throw YADTQError(.redis, "script task_page answered an unexpected reply", remedy: "This is a YADTQ bug; please report it")
            }
            scannedTo[number] = Int(next)
            total += Int(count)
            for index in stride(from: 2, to: values.count, by: 3) {
                guard let id = values[index].text, let position = values[index + 1].integer,
                    let score = values[index + 2].text.flatMap(Double.init)
                else { continue }
                candidates.append((id, number, Int(position), score))
            }
        }
        candidates.sort { $0.score != $1.score ? $0.score > $1.score : $0.id > $1.id }
        let taken = candidates.prefix(limit)
        // A shard that gave some of the page continues below the last one it gave; one whose
        // candidates did not make the page starts again at its newest candidate; one that
        // gave none continues below what it scanned.
        var next = scannedTo
        for candidate in candidates.reversed() { next[candidate.shard] = candidate.position + 1 }
        for candidate in taken { next[candidate.shard] = candidate.position }
        let ids = taken.map(\.id)
        let records = try ids.isEmpty ? [] : self.records(ids: ids).compactMap { $0 }
        let more = next.contains { $0 > 0 }
        return TaskPage(
            records: records, nextCursor: more ? next.map(String.init).joined(separator: ".") : nil, total: total)
    }

    /// The statuses with an `index:<STATUS>` zset of their own (see ``TaskScripts``).
    static let indexedStatuses: Set<TaskStatus> = [.processing, .failed, .cancelled]

    /// KEYS: the walked zset, the hash counting the total. ARGV: status to keep (or '' for
    /// all), type to keep (or '' for all), end position (exclusive, from the oldest end; ''
    /// for the newest page), limit, scan limit, task key prefix, the counting hash's field
    /// (or '' for the walked index's size). Returns the position scanned down to (0 when
    /// there is nothing older), the total, then per id, newest first: id, position, queued_at.
    private static let pageScript = RedisScript(
        name: "task_page",
        source: """
            local walked, status, type = KEYS[1], ARGV[1], ARGV[2]
            local limit, budget, task = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
            local filtered = status ~= '' or type ~= ''
            local function wanted(id)
              if not filtered then return true end
              local h = redis.call('HMGET', task .. id, 'status', 'type')
              return (status == '' or h[1] == status) and (type == '' or h[2] == type)
            end
            local total = redis.call('ZCARD', walked)
            local position = total
            if ARGV[3] ~= '' then position = math.min(tonumber(ARGV[3]), total) end
            local out, found, scanned = {0, 0}, 0, 0
            while position > 0 and found < limit and scanned < budget do
              local count = filtered and math.min(500, budget - scanned) or (limit - found)
              local from = math.max(0, position - count)
              local chunk = redis.call('ZRANGE', walked, from, position - 1, 'WITHSCORES')
              for i = #chunk - 1, 1, -2 do
                position = from + (i - 1) / 2
                scanned = scanned + 1
                if wanted(chunk[i]) then
                  found = found + 1
                  out[#out + 1] = chunk[i]
                  out[#out + 1] = position
                  out[#out + 1] = chunk[i + 1]
                  if found == limit then break end
                end
              end
            end
            if ARGV[7] ~= '' then total = tonumber(redis.call('HGET', KEYS[2], ARGV[7]) or 0) end
            out[1], out[2] = position, total
            return out
            """)

    /// How many kept tasks of each type there are, from the type counters.
    public func typeCounts(_ types: [String]) throws -> [String: Int] {
        try summed(\.types, fields: types)
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
        let finished = try finishedPerSecond(seconds.map(Int64.init))
        var result = (0..<buckets).map {
            ThroughputBucket(start: Int64((firstBucket + $0) * bucketSeconds) * 1000, succeeded: 0, failed: 0)
        }
        for (second, counts) in zip(seconds, finished) {
            let bucket = second / bucketSeconds - firstBucket
            result[bucket].succeeded += counts.succeeded
            result[bucket].failed += counts.failed
        }
        return result
    }

    /// Tasks finished in each of `seconds` (epoch seconds), summed over the shards, from the
    /// per-second counters; one pipelined round trip.
    func finishedPerSecond(_ seconds: [Int64]) throws -> [(succeeded: Int, failed: Int)] {
        let shards = keys.allShards
        let replies = try client.execute(
            seconds.flatMap { second in shards.map { RedisCommand("HMGET", $0.stats(second: second), "succeeded", "failed") } })
        return seconds.indices.map { number in
            replies[number * shards.count..<(number + 1) * shards.count].reduce(into: (succeeded: 0, failed: 0)) {
                total, reply in
                let values = reply.elements
                total.succeeded += Int(values.first?.integer ?? 0)
                total.failed += Int(values.dropFirst().first?.integer ?? 0)
            }
        }
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
