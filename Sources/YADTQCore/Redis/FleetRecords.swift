import Foundation

// The fleet's records in Redis: heartbeats (each field written only by its worker), the
// monitor's verdicts, and the reads behind a monitor refresh.

extension TaskStore {
    /// Writes this worker's own heartbeat field, never the whole hash, so workers and the
    /// monitor never overwrite each other.
    public func writeHeartbeat(worker: String, _ heartbeat: Heartbeat) throws {
        _ = try client.execute(
            RedisCommand("HSET", keys.heartbeats, worker, heartbeat.json.jsonString), or: "Writing the heartbeat of \(worker)")
    }

    /// The stored heartbeats of `workers`, by name; a worker without one, or with one that
    /// does not read, is left out.
    public func heartbeats(of workers: Set<String>) throws -> [String: Heartbeat] {
        guard !workers.isEmpty else { return [:] }
        let names = workers.sorted()
        var command = RedisCommand("HMGET", keys.heartbeats)
        for name in names { command.append(name) }
        let values = try client.execute(command, or: "Reading the heartbeats of \(names.joined(separator: ", "))").elements
        var found: [String: Heartbeat] = [:]
        for (name, value) in zip(names, values) {
            if let text = value.text, let heartbeat = try? Heartbeat(parsing: text) { found[name] = heartbeat }
        }
        return found
    }

    /// What one monitor refresh reads, in one round trip.
    struct FleetReads {
        /// Worker name -> heartbeat JSON text.
        var heartbeats: [String: String]
        /// Worker name -> the stored verdict.
        var verdicts: [String: String]
        /// Tasks finished in the given seconds.
        var finished: Int
    }

    func fleetReads(finishedIn seconds: [Int64]) throws -> FleetReads {
        let replies = try client.execute(
            [RedisCommand("HGETALL", keys.heartbeats), RedisCommand("HGETALL", keys.verdicts)], or: Self.fleetAccess)
        let finished = try finishedPerSecond(seconds).reduce(0) { $0 + $1.succeeded + $1.failed }
        return FleetReads(
            heartbeats: Self.fieldPairs(of: replies[0]), verdicts: Self.fieldPairs(of: replies[1]), finished: finished)
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
            count += Int(reply.first?.integer ?? 0)
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

    /// Writes changed verdicts and drops those of `forgotten` workers, in one round trip
    /// (none when there is nothing to do).
    func storeVerdicts(_ verdicts: [(worker: String, verdict: WorkerVerdict)], forgetting forgotten: [String]) throws {
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
        if !commands.isEmpty { _ = try client.execute(commands, or: Self.fleetAccess) }
    }

    /// The field -> value pairs of an `HGETALL` reply.
    static func fieldPairs(of reply: RedisReply) -> [String: String] {
        let elements = reply.elements
        var pairs: [String: String] = [:]
        for index in stride(from: 0, to: elements.count - 1, by: 2) {
            if let name = elements[index].text, let value = elements[index + 1].text { pairs[name] = value }
        }
        return pairs
    }

    private static let fleetAccess = "A monitor read or write"
}
