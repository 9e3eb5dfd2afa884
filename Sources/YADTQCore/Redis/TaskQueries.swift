import Foundation

// The reads behind the web page and its JSON API: filtered pages of tasks, worker
// heartbeats, throughput, and the web's login sessions. Every read uses the
// indexes and counters the task scripts maintain (the listing buckets, `running`,
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

    /// How many tasks `yadtq-ctl ls` lists when `--limit` does not say: a screenful.
    public static let defaultListLimit = 50

    /// Why a page cursor was refused.
    public struct InvalidCursor: Error, CustomStringConvertible, Sendable {
        public var cursor: String
        public var description: String {
            "invalid cursor '\(cursor)': pass back the next_cursor of a previous page, or leave it out for the newest tasks"
        }
    }

    /// The newest tasks with a status and/or of a type.
    ///
    /// PROCESSING, FAILED and CANCELLED have an index of their own, which is walked (checking
    /// each task's type when a type is asked for). The other statuses and types have only
    /// counters, so the listing (`bucket:<second>`) is walked newest first and each task's
    /// status and type checked inside Redis, at most `scanLimit` ids per shard and call: a
    /// page may then come back short, with a cursor to continue from.
    ///
    /// Each shard is walked on its own and the shards' candidates merged newest first. A
    /// cursor holds, per shard, where its walk goes on (`<second>:<position>` in the listing;
    /// in an index, the key of the task it goes on below, `<queued_at>_<id in hex>`, or at,
    /// `<queued_at>=<id in hex>`; `-` when the shard is done), joined with `.`, so pages stay
    /// put while new tasks arrive on top, and an index's pages too while tasks leave it.
    /// - Parameters:
    ///   - cursor: `nil` for the newest page, else a previous page's ``TaskPage/nextCursor``.
    ///   - limit: tasks per page.
    public func taskPage(
        status: TaskStatus?, type: String?, cursor: String?, limit: Int, scanLimit: Int = 5000
    ) throws -> TaskPage {
        var starts = [String](repeating: "", count: keys.shards)
        if let cursor {
            let parts = cursor.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == keys.shards, parts.allSatisfy({ Self.isCursorPart($0, byIndex: Self.hasIndex(status)) })
            else { throw InvalidCursor(cursor: cursor) }
            starts = parts
        }
        // A status or a type alone is counted exactly by its counter; both together by the
        // status's counter (an upper bound); neither by all the status counters.
        let counter: (key: String, field: String) =
            switch (status, type) {
            case (let status?, _): ("counts", status.rawValue)
            case (nil, let type?): ("types", type)
            case (nil, nil): ("counts", "")
            }
        // Each shard's candidates, in its walk's order.
        var candidates = [[(record: TaskRecord, restart: String, below: String)]](repeating: [], count: keys.shards)
        var scannedTo = [String](repeating: "-", count: keys.shards)
        var total = 0
        let walked = starts.indices.filter { starts[$0] != "-" }
        let calls = walked.map { number in
            Self.call(
                Self.pageScript, shard: keys[number],
                arguments: [
                    status?.rawValue ?? "", type ?? "", starts[number], String(limit), String(scanLimit), counter.field,
                    counter.key,
                ]) { _ in }
        }
        for (number, reply) in zip(walked, try client.evaluate(calls)) {
            let values = reply.elements
            guard values.count >= 2, let next = values[0].text, let count = values[1].integer, (values.count - 2) % 4 == 0
            else {
                throw YADTQError(.redis, "script task_page answered an unexpected reply", remedy: "This is a YADTQ bug; please report it")
            }
            scannedTo[number] = next
            total += Int(count)
            for index in stride(from: 2, to: values.count, by: 4) {
                guard let id = values[index].text, let restart = values[index + 1].text,
                    let below = values[index + 2].text, case .string(let packed) = values[index + 3],
                    let record = TaskRecordCoding.decode(id: id, packed)
                else { continue }
                candidates[number].append((record, restart, below))
            }
        }
        if cursor != nil {
            // A shard already done still counts towards the total.
            total += try pageTotal(counter, shards: starts.indices.filter { starts[$0] == "-" })
        }
        // The page takes from the shards' heads, the newest queued_at first, so what a shard
        // gives is always the start of its walk and its cursor goes on right below it. (Tasks
        // of one millisecond, as a batch's are, come in their walk's order, not by id: sorted
        // by id, the last one taken was not the deepest one walked, and the next page repeated
        // or skipped tasks.)
        var taken: [TaskRecord] = []
        var given = [Int](repeating: 0, count: keys.shards)
        while taken.count < limit {
            var newest: Int?
            for shard in candidates.indices where given[shard] < candidates[shard].count {
                let queuedAt = candidates[shard][given[shard]].record.queuedAt ?? 0
                if newest.map({ queuedAt > (candidates[$0][given[$0]].record.queuedAt ?? 0) }) ?? true { newest = shard }
            }
            guard let shard = newest else { break }
            taken.append(candidates[shard][given[shard]].record)
            given[shard] += 1
        }
        // A shard that gave some of the page continues below the last one it gave; one whose
        // candidates did not make the page starts again at its newest candidate; one that
        // gave none continues below what it scanned.
        var next = scannedTo
        for shard in candidates.indices {
            if given[shard] > 0 {
                next[shard] = candidates[shard][given[shard] - 1].below
            } else if let first = candidates[shard].first {
                next[shard] = first.restart
            }
        }
        let more = next.contains { $0 != "-" }
        return TaskPage(records: taken, nextCursor: more ? next.joined(separator: ".") : nil, total: total)
    }

    /// Whether listing tasks in `status` walks that status's own index (positions) rather than
    /// the listing buckets (`<second>:<position>`).
    private static func hasIndex(_ status: TaskStatus?) -> Bool {
        status == .processing || status == .failed || status == .cancelled
    }

    /// Whether `part` is a shard's cursor for the walk the listing makes: a task's key in an
    /// index, or a second and a position in the listing (a cursor of the other kind would make
    /// the walk fail in Redis, or start again at the newest task). Its numbers are at most
    /// 2^53: the scripts' numbers are doubles, which above that no longer tell one second,
    /// position or `queued_at` from the next (and Lua writes them in exponent form, which
    /// Redis refuses as an index).
    private static func isCursorPart(_ part: String, byIndex: Bool) -> Bool {
        if part == "-" { return true }
        // Digits only: Swift's `Int64("+5")` reads a sign, which the scripts' patterns refuse.
        func isCount(_ text: Substring) -> Bool { text.allSatisfy(\.isASCIIDigit) && Int64(text).map { $0 <= 1 << 53 } ?? false }
        guard byIndex else {
            let numbers = part.split(separator: ":", omittingEmptySubsequences: false)
            return numbers.count == 2 && numbers.allSatisfy(isCount)
        }
        guard let mark = part.firstIndex(where: { $0 == "_" || $0 == "=" }) else { return false }
        let hex = part[part.index(after: mark)...]
        return isCount(part[..<mark]) && !hex.isEmpty && hex.count % 2 == 0
            && hex.count <= 2 * TaskDeclaration.maximumIDLength && hex.allSatisfy { $0.isASCII && $0.isHexDigit }
    }

    /// The page total of shards whose walk is done: their counter only.
    private func pageTotal(_ counter: (key: String, field: String), shards: [Int]) throws -> Int {
        guard !shards.isEmpty else { return 0 }
        let commands = shards.map { number in
            let shard = keys[number]
            return counter.field.isEmpty
                ? RedisCommand("HVALS", shard.counts)
                : RedisCommand("HGET", counter.key == "types" ? shard.types : shard.counts, counter.field)
        }
        return try client.execute(commands, or: "Reading the task counts").reduce(0) { sum, reply in
            sum + (reply.elements.isEmpty ? reply.counter : reply.elements.reduce(0) { $0 + $1.counter })
        }
    }

    /// KEYS and first ARGV: a task script call's. ARGV then: status to keep (or '' for all),
    /// type to keep (or '' for all), where to go on ('' for the newest page), limit, scan
    /// limit, the counter field ('' for the sum of every status count), the counting hash
    /// (`counts` or `types`). Returns where the next page goes on (`-` when done), the total,
    /// then per task, newest first: id, the cursor part that starts again at it, the one that
    /// goes on below it, its packed record.
    private static let pageScript = RedisScript(
        name: "task_page",
        source: TaskScripts.listingWalk + """
            local status, type, cursor = ARGV[A], ARGV[A + 1], ARGV[A + 2]
            local limit, budget = tonumber(ARGV[A + 3]), tonumber(ARGV[A + 4])
            local field, counter = ARGV[A + 5], ARGV[A + 6] == 'types' and K.types or K.counts
            local out, found = {'-', 0}, 0
            local function visit(id, r, restart, below, packed)
              if (status ~= '' and r[F.status] ~= status) or (type ~= '' and r[F.type] ~= type) then return false end
              found = found + 1
              out[#out + 1] = id
              out[#out + 1] = restart
              out[#out + 1] = below
              out[#out + 1] = packed
              return found >= limit
            end
            if status == 'PROCESSING' or status == 'FAILED' or status == 'CANCELLED' then
              -- An index, ordered by queued_at, then id (as Redis orders a sorted set's members:
              -- by their bytes; Lua's < would compare by the locale). Its cursor is a task's
              -- key, not a position: tasks that enter or leave the index between two pages do
              -- not move the next one. '<queued_at>_<id in hex>': the tasks below that one;
              -- '<queued_at>=<id in hex>': that one and those below.
              local function bytes_before(a, b)
                for p = 1, math.min(#a, #b) do
                  local x, y = byte(a, p), byte(b, p)
                  if x ~= y then return x < y end
                end
                return #a < #b
              end
              -- size, and key_at(p): the queued_at and id at position p (0: the oldest), and
              -- slice(from, to): the positions' { id, record, packed, queued_at } (false for a
              -- task without a record).
              local size, key_at, slice
              if status == 'PROCESSING' then
                local ids = redis.call('HKEYS', K.running)
                local entries = {}
                for k, packed in ipairs(read(ids)) do
                  if packed then
                    local r = decode(packed)
                    entries[#entries + 1] = { ids[k], r, packed, r[F.queued_at] }
                  end
                end
                table.sort(entries, function(a, b)
                  if a[4] ~= b[4] then return a[4] < b[4] end
                  return bytes_before(a[1], b[1])
                end)
                size = #entries
                key_at = function(p) return entries[p + 1][4], entries[p + 1][1] end
                slice = function(from, to)
                  local part = {}
                  for p = from, to do part[#part + 1] = entries[p + 1] end
                  return part
                end
              else
                local key = K.index .. status
                size = redis.call('ZCARD', key)
                key_at = function(p)
                  local found = redis.call('ZRANGE', key, p, p, 'WITHSCORES')
                  return tonumber(found[2]), found[1]
                end
                slice = function(from, to)
                  local found = redis.call('ZRANGE', key, from, to, 'WITHSCORES')
                  local ids = {}
                  for k = 1, #found / 2 do ids[k] = found[2 * k - 1] end
                  local part = {}
                  for k, packed in ipairs(read(ids)) do
                    part[k] = packed and { ids[k], decode(packed), packed, tonumber(found[2 * k]) } or false
                  end
                  return part
                end
              end
              -- How many of the index's tasks sort before (queued_at, id), and with it when `at`.
              local function rank_of(queued_at, id, at)
                local lo, hi = 0, size
                while lo < hi do
                  local mid = math.floor((lo + hi) / 2)
                  local mid_queued, mid_id = key_at(mid)
                  if mid_queued < queued_at or (mid_queued == queued_at and (bytes_before(mid_id, id) or (at and mid_id == id))) then
                    lo = mid + 1
                  else
                    hi = mid
                  end
                end
                return lo
              end
              local function key_text(queued_at, mark, id)
                return string.format('%.0f', queued_at) .. mark
                  .. (string.gsub(id, '.', function(c) return string.format('%02x', byte(c)) end))
              end
              local position = size
              if cursor ~= '' then
                local queued_text, mark, hex = string.match(cursor, '^(%d+)([_=])(%x+)$')
                if not queued_text or #hex % 2 ~= 0 then
                  return redis.error_reply('task_page: ' .. cursor .. ' is not a cursor of this index')
                end
                local id = string.gsub(hex, '..', function(h) return string.char(tonumber(h, 16)) end)
                position = rank_of(tonumber(queued_text), id, mark == '=')
              end
              local scanned, done = 0, false
              while position > 0 and not done and scanned < budget do
                local from = math.max(0, position - 500)
                local part = slice(from, position - 1)
                for j = #part, 1, -1 do
                  position = from + j - 1
                  scanned = scanned + 1
                  local e = part[j]
                  if e then
                    local below = position > 0 and key_text(e[4], '_', e[1]) or '-'
                    if visit(e[1], e[2], key_text(e[4], '=', e[1]), below, e[3]) then done = true; break end
                  end
                end
                if not done then position = from end
              end
              -- (The task at `position` is the last one looked at.)
              if position > 0 then
                local queued_at, id = key_at(position)
                out[1] = key_text(queued_at, '_', id)
              end
            else
              local s, i
              if cursor ~= '' then
                local colon = string.find(cursor, ':', 1, true)
                if colon then s, i = tonumber(string.sub(cursor, 1, colon - 1)), tonumber(string.sub(cursor, colon + 1)) end
              end
              s, i = walk(s, i, budget, function(id, r, bs, position, packed, last)
                return visit(id, r, bs .. ':' .. (position + 1), last and '-' or (bs .. ':' .. position), packed)
              end)
              if s then out[1] = s .. ':' .. i end
            end
            if field == '' then
              local sum = 0
              for _, n in ipairs(redis.call('HVALS', K.counts)) do sum = sum + tonumber(n) end
              out[2] = sum
            else
              out[2] = tonumber(redis.call('HGET', counter, field) or 0)
            end
            return out
            """)

    /// How many kept tasks of each type there are, from the type counters.
    public func typeCounts(_ types: [String]) throws -> [String: Int] {
        try summed(\.types, fields: types)
    }

    // MARK: - Workers

    /// One worker as its heartbeat and the monitor describe it.
    public struct WorkerHeartbeat: Sendable {
        public var name: String
        /// The heartbeat document as the worker wrote it, or `nil` when it is not valid JSON.
        public var document: JSONValue?
        /// The monitor's verdict (`ALIVE`, `DEAD`, `STUCK`), when a monitor has judged the worker.
        public var verdict: String?
        /// Redis's clock when it read the heartbeat (see ``Heartbeat/clock(at:redisNow:)``).
        public var redisNow: Int64?

        public init(name: String, document: JSONValue?, verdict: String? = nil, redisNow: Int64? = nil) {
            self.name = name
            self.document = document
            self.verdict = verdict
            self.redisNow = redisNow
        }

        /// The worker's heartbeat, `nil` when ``document`` is not one.
        public var heartbeat: Heartbeat? { document.flatMap { try? Heartbeat(document: $0) } }

        /// The time on this worker's clock for a reader at `localNow` (see
        /// ``Heartbeat/clock(at:redisNow:)``): what its heartbeat's times compare with.
        public func clock(at localNow: Int64) -> Int64 {
            heartbeat?.clock(at: localNow, redisNow: redisNow) ?? localNow
        }
    }

    /// Every worker that ever wrote a heartbeat or was judged by the monitor, by name.
    public func workerHeartbeats() throws -> [WorkerHeartbeat] {
        let fleet = try heartbeatsAndVerdicts()
        return Set(fleet.heartbeats.keys).union(fleet.verdicts.keys).sorted().map { name in
            WorkerHeartbeat(
                name: name, document: fleet.heartbeats[name].flatMap { try? JSONValue(parsing: $0) },
                verdict: fleet.verdicts[name], redisNow: fleet.redisNow)
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
            seconds.flatMap { second in shards.map { RedisCommand("HMGET", $0.stats(second: second), "succeeded", "failed") } },
            or: "Reading the finished-per-second counters")
        return seconds.indices.map { number in
            replies[number * shards.count..<(number + 1) * shards.count].reduce(into: (succeeded: 0, failed: 0)) {
                total, reply in
                let values = reply.elements
                total.succeeded += values.first?.counter ?? 0
                total.failed += values.dropFirst().first?.counter ?? 0
            }
        }
    }

    // MARK: - Web sessions

    /// Stores a new login session of the web page for `lifetime`, holding `fingerprint` (a
    /// digest of the token it signed in with); returns its id. Sessions live in Redis so a
    /// restarted or second web server honours them.
    public func createWebSession(lifetime: Duration, fingerprint: String) throws -> String {
        let id = (0..<4).map { _ in UInt64.random(in: .min ... .max) }.map { String($0, radix: 16) }.joined(separator: "-")
        _ = try client.execute(
            RedisCommand("SET", keys.webSession(id), fingerprint, "EX", String(Int(lifetime.inSeconds))),
            or: "Storing a login session")
        return id
    }

    /// Whether `id` names a live login session signed in with the token `fingerprint` digests:
    /// a session of a token since rotated, or of another server's token, is none.
    public func isWebSession(_ id: String, fingerprint: String) throws -> Bool {
        try client.execute(RedisCommand("GET", keys.webSession(id)), or: "Reading a login session").text == fingerprint
    }

    /// Ends a login session.
    public func deleteWebSession(_ id: String) throws {
        _ = try client.execute(RedisCommand("DEL", keys.webSession(id)), or: "Ending a login session")
    }
}
