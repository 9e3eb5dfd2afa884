import Foundation

// The fleet's records in Redis: heartbeats (each field written only by its worker), the
// monitor's verdicts, and the reads behind a monitor refresh.

extension TaskStore {
    /// Writes this worker's own heartbeat field, never the whole hash, so workers and the
    /// monitor never overwrite each other. Redis adds its own clock's time to the entry
    /// (``Heartbeat/receivedAt``).
    public func writeHeartbeat(worker: String, _ heartbeat: Heartbeat) throws {
        let arguments = RedisCommand(worker, heartbeat.json.jsonString, Heartbeat.receivedAtField)
        _ = try client.evaluate(Self.heartbeatWrite, keys: [keys.heartbeats], arguments: arguments)
    }

    /// The stored heartbeats of `workers`, by name, and Redis's clock when it read them (see
    /// ``Heartbeat/clock(at:redisNow:)``); a worker without one, or with one that does not
    /// read, is left out.
    public func heartbeats(of workers: Set<String>) throws -> (redisNow: Int64, heartbeats: [String: Heartbeat]) {
        guard !workers.isEmpty else { return (0, [:]) }
        let names = workers.sorted()
        let read = try timedHeartbeats(fields: names)
        var found: [String: Heartbeat] = [:]
        for (name, value) in zip(names, read.values) {
            if let text = value.text, let heartbeat = try? Heartbeat(parsing: text) { found[name] = heartbeat }
        }
        return (read.redisNow, found)
    }

    /// The fields `fields` of the heartbeats' hash (all of it, as `HGETALL` gives it, when
    /// empty), and Redis's clock when it read them: both from the node that holds the hash,
    /// whose clock stamped the entries.
    func timedHeartbeats(fields: [String] = []) throws -> (redisNow: Int64, values: [RedisReply]) {
        var arguments = RedisCommand()
        for field in fields { arguments.append(field) }
        let reply = try client.evaluate(Self.heartbeatsRead, keys: [keys.heartbeats], arguments: arguments).elements
        guard let redisNow = reply.first?.integer else {
            throw YADTQError(
                .redis, "script heartbeats_read answered without Redis's time", remedy: "This is a YADTQ bug; please report it")
        }
        return (redisNow, Array(reply.dropFirst()))
    }

    /// KEYS: the heartbeats' hash. ARGV: the worker's name, its heartbeat (a JSON object), the
    /// field Redis's time goes in. Stores the heartbeat with Redis's time (ms) added.
    private static let heartbeatWrite = RedisScript(
        name: "heartbeat_write",
        source: redisMilliseconds + """
            local entry, field = ARGV[2], ARGV[3]
            local stamped = string.sub(entry, 1, -2) .. ',"' .. field .. '":' .. string.format('%.0f', redis_ms()) .. '}'
            redis.call('HSET', KEYS[1], ARGV[1], stamped)
            return 1
            """)

    /// KEYS: the heartbeats' hash. ARGV: the fields to read (none: every field and value).
    /// Returns Redis's time (ms), then what HMGET (or HGETALL) gives.
    private static let heartbeatsRead = RedisScript(
        name: "heartbeats_read",
        source: redisMilliseconds + """
            local values = #ARGV == 0 and redis.call('HGETALL', KEYS[1]) or redis.call('HMGET', KEYS[1], unpack(ARGV))
            local out = { redis_ms() }
            for i = 1, #values do out[i + 1] = values[i] end
            return out
            """)

    /// Redis's clock in milliseconds, for the heartbeat scripts. Before Redis 7 a script that
    /// reads the clock may write only once it asked for its effects, not itself, to be
    /// replicated (its replay elsewhere would read another time).
    private static let redisMilliseconds = """
        if redis.replicate_commands then redis.replicate_commands() end
        local function redis_ms()
          local time = redis.call('TIME')
          return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        end

        """

    /// Every heartbeat (worker name -> JSON text), Redis's clock when it read them, and every
    /// stored verdict (worker name -> verdict): two round trips, as the clock must come from the
    /// node that holds the heartbeats, which on a cluster need not hold the verdicts.
    func heartbeatsAndVerdicts() throws -> (heartbeats: [String: String], redisNow: Int64, verdicts: [String: String]) {
        let heartbeats = try timedHeartbeats()
        let verdicts = try client.execute(RedisCommand("HGETALL", keys.verdicts), or: Self.fleetAccess)
        return (Self.fieldPairs(of: heartbeats.values), heartbeats.redisNow, Self.fieldPairs(of: verdicts.elements))
    }

    /// What one monitor refresh reads.
    struct FleetReads {
        /// Worker name -> heartbeat JSON text.
        var heartbeats: [String: String]
        /// Redis's clock when it read them (see ``Heartbeat/clock(at:redisNow:)``).
        var redisNow: Int64
        /// Worker name -> the stored verdict.
        var verdicts: [String: String]
        /// Tasks finished in the given seconds.
        var finished: Int
    }

    func fleetReads(finishedIn seconds: [Int64]) throws -> FleetReads {
        let fleet = try heartbeatsAndVerdicts()
        let finished = try finishedPerSecond(seconds).reduce(0) { $0 + $1.succeeded + $1.failed }
        return FleetReads(heartbeats: fleet.heartbeats, redisNow: fleet.redisNow, verdicts: fleet.verdicts, finished: finished)
    }

    /// Counts the PROCESSING tasks (at most `scanLimit` per shard) whose attempt no running
    /// process holds, and lists the first `listLimit` of them with their worker. Runs inside
    /// Redis: one round trip however many tasks are in flight.
    /// - Parameter running: each worker still running, with when its process started (ms since
    ///   the epoch, 0 when unknown): an attempt its worker began before then was begun by an
    ///   earlier process of the same name, which is gone.
    func orphans(running: [(worker: String, startedAt: Int64)], scanLimit: Int, listLimit: Int) throws
        -> (count: Int, listed: [OrphanedTask])
    {
        let calls = keys.allShards.map { shard in
            var arguments = RedisCommand(String(scanLimit), String(listLimit))
            for process in running {
                arguments.append(process.worker)
                arguments.append(String(process.startedAt))
            }
            return RedisClient.ScriptCall(script: Self.orphanScript, keys: [shard.running], arguments: arguments)
        }
        var count = 0
        var listed: [OrphanedTask] = []
        for reply in try client.evaluate(calls).map(\.elements) {
            count += reply.first?.counter ?? 0
            listed += stride(from: 1, to: reply.count - 1, by: 2).compactMap { index in
                reply[index].text.flatMap { id in reply[index + 1].text.map { OrphanedTask(id: id, worker: $0) } }
            }
        }
        return (count, Array(listed.prefix(listLimit)))
    }

    /// KEYS: a shard's `running` hash (id -> the attempt in flight: its started_at, ending
    /// with its worker). ARGV: scan limit, list limit, then the name and process start of each
    /// worker still running. Returns the orphan count, then id and worker of the first orphans.
    private static let orphanScript = RedisScript(
        name: "monitor_orphans",
        source: TaskScripts.runningEntry + """
            local limit, listed = tonumber(ARGV[1]), tonumber(ARGV[2])
            local started = {}
            for i = 3, #ARGV, 2 do started[ARGV[i]] = tonumber(ARGV[i + 1]) end
            local out = {0}
            local pairs = redis.call('HSCAN', KEYS[1], 0, 'COUNT', limit)[2]
            for i = 1, #pairs, 2 do
              local id, entry = pairs[i], pairs[i + 1]
              local worker = entry_worker(entry)
              local _, _, attempt_started = struct_unpack(ENTRY, entry)
              -- An attempt begun before its worker's process started was begun by an earlier
              -- process of that name, which is gone (both times are from the worker's clock).
              if not started[worker] or attempt_started < started[worker] then
                out[1] = out[1] + 1
                if out[1] <= listed then
                  out[#out + 1] = id
                  out[#out + 1] = worker
                end
              end
            end
            return out
            """)

    /// Writes changed verdicts, drops those of `forgotten` workers and keeps every verdict for
    /// `lifetime` from now, in one round trip. The lifetime is renewed at each refresh: the
    /// verdicts of a monitor that stopped expire, so readers (the web page, `/metrics`) judge
    /// the heartbeats themselves instead of showing a dead worker ALIVE for ever.
    func storeVerdicts(
        _ verdicts: [(worker: String, verdict: WorkerVerdict)], forgetting forgotten: [String], lifetime: Duration
    ) throws {
        var commands: [RedisCommand] = []
        if !verdicts.isEmpty {
            var command = RedisCommand("HSET", keys.verdicts)
            for entry in verdicts {
                command.append(entry.worker)
                command.append(entry.verdict.rawValue)
            }
            commands.append(command)
        }
        if !forgotten.isEmpty { commands.append(RedisCommand(["HDEL", keys.verdicts] + forgotten)) }
        commands.append(RedisCommand("PEXPIRE", keys.verdicts, String(max(lifetime.inMilliseconds, 1))))
        _ = try client.execute(commands, or: Self.fleetAccess)
    }

    /// The field -> value pairs of an `HGETALL` reply's elements.
    static func fieldPairs(of elements: [RedisReply]) -> [String: String] {
        var pairs: [String: String] = [:]
        for index in stride(from: 0, to: elements.count - 1, by: 2) {
            if let name = elements[index].text, let value = elements[index + 1].text { pairs[name] = value }
        }
        return pairs
    }

    private static let fleetAccess = "Reading or writing the fleet's heartbeats and verdicts"
}
