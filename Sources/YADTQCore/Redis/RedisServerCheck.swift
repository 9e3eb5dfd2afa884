extension TaskStore {
    /// The oldest Redis YADTQ runs on: its scripts need Redis 5's commands.
    public static let minimumRedisMajorVersion = 5

    /// What ``checkServer()`` found.
    public struct ServerCheck: Sendable {
        public var version: String
        /// What works but is unsafe, to be logged as warnings.
        public var warnings: [String]
    }

    /// Checks, once and without retrying, that Redis can serve YADTQ: it answers, accepts
    /// the user and password, is version 5 or later, runs Lua scripts, is not a replica (unless
    /// it is a cluster's node), lets the user at YADTQ's keys and does not evict keys that have
    /// no expiry when it is full. A worker calls it before it joins its group, so a wrong
    /// setting is reported before it takes partitions. (On a cluster, the first node named in `YADTQ_REDIS` that answers
    /// speaks for all: a master among them may be down while its replica serves in its place.)
    /// - Throws: a ``YADTQError`` whose message says which of those failed and what to do.
    public func checkServer() throws -> ServerCheck {
        let url = client.url
        let connection = try firstAnswering(url)
        let replies = try connection.execute([
            RedisCommand("PING"), RedisCommand("INFO", "server"), RedisCommand("EVAL", "return 1", "0"),
            RedisCommand("INFO", "memory"), RedisCommand("INFO", "replication"),
        ])
        if let message = replies[0].errorMessage {
            throw RedisErrorReply(message).error("Redis at \(url) refused PING")
        }
        let version = Self.infoField("redis_version", in: replies[1]) ?? "unknown"
        if let major = Int(version.prefix { $0 != "." }), major < Self.minimumRedisMajorVersion {
            throw YADTQError(
                .redis, "Redis at \(url) is version \(version); YADTQ needs \(Self.minimumRedisMajorVersion) or later",
                remedy: "Upgrade Redis, or point YADTQ_REDIS at a newer one")
        }
        if let message = replies[2].errorMessage {
            var refusal = RedisErrorReply(message)
            if refusal.kind == .other { refusal.kind = .scriptingUnavailable }
            throw refusal.error("Redis at \(url) (version \(version)) cannot run YADTQ's Lua scripts")
        }
        // A replica refuses every write (or, with replica-read-only off, takes writes its
        // primary never sees). A cluster's client routes to the masters itself, so there
        // the node named may be a replica after a failover.
        if !url.isCluster, Self.infoField("role", in: replies[4]) == "slave" {
            let primary = [Self.infoField("master_host", in: replies[4]), Self.infoField("master_port", in: replies[4])]
                .compactMap { $0 }.joined(separator: ":")
            throw RedisErrorReply("READONLY Redis at \(url) is a replica of \(primary)")
                .error("Redis at \(url) cannot take YADTQ's writes")
        }
        try checkAccess(connection, url: url)
        var warnings: [String] = []
        // A full Redis that evicts would drop task records (a shard's records are one key)
        // or the scheduler's lease; with noeviction it refuses writes, which YADTQ waits out.
        let policy = Self.infoField("maxmemory_policy", in: replies[3]) ?? "noeviction"
        if policy.hasPrefix("allkeys-") {
            throw YADTQError(
                .redis,
                "Redis at \(url) evicts any key when it is full (maxmemory-policy \(policy)): it would drop whole "
                    + "shards of task records",
                remedy: "Set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf): "
                    + "a full Redis then refuses writes, workers wait, and retention frees the room")
        } else if policy != "noeviction" {
            warnings.append(
                "Redis at \(url) evicts keys that expire when it is full (maxmemory-policy \(policy)): the scheduler's "
                    + "lease could go early and a due or periodic task be published twice; YADTQ expects noeviction")
        }
        return ServerCheck(version: version, warnings: warnings)
    }

    /// A connection to the first node named that can be reached; a node that answers with a
    /// refusal (a wrong password, say) ends the search with that refusal, which the others
    /// would give too.
    private func firstAnswering(_ url: RedisURL) throws -> RedisConnection {
        var lastError: any Error = YADTQError(.configuration, "YADTQ_REDIS names no Redis", remedy: "Set YADTQ_REDIS")
        for node in url.nodes {
            do {
                return try RedisConnection(url: url.isCluster ? url.pointing(at: node) : url, timeout: .seconds(2))
            } catch let error as YADTQError where error.libraryCode != nil {
                lastError = error  // a transport failure (hiredis's code): try the next node
            }
        }
        throw lastError
    }

    /// Checks that the user of `url` may run YADTQ's scripts on its keys. A user that Redis's
    /// ACL keeps from them passes every other check and is refused (`NOPERM`) only at its first
    /// task write: a worker would join its group, give its partitions up past its outage limit
    /// and join again, for as long as the ACL stays. Redis checks a script's declared keys
    /// against the ACL before it runs it (and, on a cluster, before it redirects or refuses it
    /// for keys of several slots), so a script that does nothing, declaring a shard's keys and
    /// the fleet's, asks the ACL and changes nothing.
    private func checkAccess(_ connection: RedisConnection, url: RedisURL) throws {
        let declared = keys[0].scriptKeys + [keys.heartbeats, keys.verdicts, keys.plugins]
        let reply = try connection.execute([RedisCommand(["EVAL", "return 0", String(declared.count)] + declared)])[0]
        guard let message = reply.errorMessage, RedisErrorReply(message).kind == .noPermission else { return }
        let user = url.username ?? "default"
        throw YADTQError(
            .redis, "Redis at \(url) does not let the user '\(user)' run YADTQ's scripts on its keys (\(keys.prefix)*)",
            libraryMessage: message,
            remedy: "Give the user the namespace's keys and the commands YADTQ sends "
                + "(e.g. ACL SETUSER \(user) ~\(keys.prefix)* +@all), or point YADTQ_REDIS at a user that has them")
    }

    /// How full each master is (one for a single Redis), read from `INFO memory`.
    public func memory() throws -> [RedisMemory] {
        try client.onEveryMaster(RedisCommand("INFO", "memory")).map { node, reply in
            guard reply.text != nil, let used = Self.infoField("used_memory", in: reply).flatMap({ Int64($0) }) else {
                throw YADTQError(.redis, "Redis at \(node) answered INFO memory with \(reply)", remedy: "Check YADTQ_REDIS")
            }
            return RedisMemory(
                node: node, used: used, limit: Self.infoField("maxmemory", in: reply).flatMap { Int64($0) } ?? 0)
        }
    }

    /// The value of `field` in an `INFO` reply (`field:value` lines).
    private static func infoField(_ field: String, in reply: RedisReply) -> String? {
        let prefix = field + ":"
        return (reply.text ?? "").split(whereSeparator: \.isNewline).first { $0.hasPrefix(prefix) }
            .map { String($0.dropFirst(prefix.count)) }
    }

    /// The time Redis has spent inside scripts (`EVALSHA`) since its statistics were last
    /// reset, added up over the masters: what `yadtq-bench --replay` measures per state change.
    public func scriptTime() throws -> Duration {
        var microseconds: Int64 = 0
        for (_, reply) in try client.onEveryMaster(RedisCommand("INFO", "commandstats")) {
            guard reply.text != nil else {
                throw YADTQError(.redis, "Redis answered INFO commandstats with \(reply)", remedy: "Check YADTQ_REDIS")
            }
            let line = Self.infoField("cmdstat_evalsha", in: reply)
            let usec = line?.split(separator: ",").first { $0.hasPrefix("usec=") }.flatMap { Int64($0.dropFirst(5)) }
            microseconds += usec ?? 0
        }
        return .microseconds(microseconds)
    }
}
