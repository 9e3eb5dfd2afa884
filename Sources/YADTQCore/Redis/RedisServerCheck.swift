extension TaskStore {
    /// The oldest Redis YADTQ runs on: its scripts need Redis 5's commands.
    public static let minimumRedisMajorVersion = 5

    /// Checks, once and without retrying, that Redis can serve YADTQ: it answers, accepts
    /// the password, is version 5 or later and runs Lua scripts. A worker calls it before
    /// it joins its group, so a wrong setting is reported before it takes partitions.
    /// - Returns: the Redis version.
    /// - Throws: a ``YADTQError`` whose message says which of those failed and what to do.
    public func checkServer() throws -> String {
        let url = client.url
        let connection = try RedisConnection(url: url, timeout: .seconds(2))
        let replies = try connection.execute([
            RedisCommand("PING"), RedisCommand("INFO", "server"), RedisCommand("EVAL", "return 1", "0"),
        ])
        if let message = replies[0].errorMessage {
            throw RedisErrorReply(message).error("Redis at \(url) refused PING")
        }
        let info = replies[1].text ?? ""
        let version = info.split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("redis_version:") }
            .map { String($0.dropFirst("redis_version:".count)) } ?? "unknown"
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
        return version
    }

    /// The time Redis has spent inside scripts (`EVALSHA`) since its statistics were last
    /// reset, added up over the masters: what `yadtq-bench --replay` measures per state change.
    public func scriptTime() throws -> Duration {
        var microseconds: Int64 = 0
        for reply in try client.onEveryMaster(RedisCommand("INFO", "commandstats")) {
            guard let info = reply.text else {
                throw YADTQError(.redis, "Redis answered INFO commandstats with \(reply)", remedy: "Check YADTQ_REDIS")
            }
            let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_evalsha:") }
            let usec = line?.split(separator: ",").first { $0.hasPrefix("usec=") }.flatMap { Int64($0.dropFirst(5)) }
            microseconds += usec ?? 0
        }
        return .microseconds(microseconds)
    }
}
