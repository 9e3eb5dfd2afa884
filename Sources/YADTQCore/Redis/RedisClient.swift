import Foundation
import Logging

/// A Redis connection that survives Redis restarts: it reconnects with backoff,
/// replays the failed pipeline and reloads server-side scripts after `NOSCRIPT`.
///
/// - Important: Every call blocks the calling thread (up to `reconnectFor` while
///   Redis is away). Call it from a dedicated thread or a `DispatchQueue`, never
///   from Swift's cooperative pool.
final class RedisClient: @unchecked Sendable {
    // @unchecked Sendable: `connection` and `scriptHashes` are read and written only
    // while holding `lock`, and a RedisConnection never escapes the lock.
    private let lock = NSLock()
    private var connection: RedisConnection?
    private var scriptHashes: [String: String] = [:]
    let url: RedisURL
    private let logger: Logger
    private let reconnectFor: Duration?

    /// - Parameter reconnectFor: how long to keep retrying while Redis is unreachable
    ///   before a call throws; `nil` retries for ever (workers ride out any outage).
    init(url: RedisURL, logger: Logger, reconnectFor: Duration? = .seconds(60)) {
        self.url = url
        self.logger = logger
        self.reconnectFor = reconnectFor
    }

    /// Runs a pipeline (one round trip), reconnecting and replaying it if the connection breaks.
    func execute(_ commands: [RedisCommand]) throws -> [RedisReply] {
        lock.lock()
        defer { lock.unlock() }
        return try withReconnection { connection in
            let replies = try connection.execute(commands)
            for reply in replies { try Self.throwIfTransient(reply.errorMessage) }
            return replies
        }
    }

    /// A restarted Redis answers `LOADING` until it has read its data back (seconds for a
    /// big append-only file), and a Redis stuck in a long script answers `BUSY`. Both pass
    /// like a broken connection does, so they are retried with backoff (see
    /// `withReconnection`) instead of failing the call for good.
    private static func throwIfTransient(_ message: String?) throws {
        guard let message else { return }
        let reply = RedisErrorReply(message)
        if reply.isTransient { throw reply.error("Redis cannot answer yet") }
    }

    private static func isTransient(_ error: YADTQError) -> Bool {
        error.area == .redis
            && (error.libraryCode != nil || error.libraryMessage.map { RedisErrorReply($0).isTransient } == true)
    }

    func execute(_ command: RedisCommand) throws -> RedisReply {
        try execute([command])[0]
    }

    /// Runs a server-side Lua script with `EVALSHA`, loading it on first use and
    /// again after Redis forgot it (a restart answers `NOSCRIPT`).
    func evaluate(_ script: RedisScript, arguments: RedisCommand) throws -> RedisReply {
        lock.lock()
        defer { lock.unlock() }
        return try withReconnection { connection in
            for _ in 0..<2 {
                let hash = try scriptHash(script, connection)
                var command = RedisCommand("EVALSHA", hash, "0")
                command.append(contentsOf: arguments)
                let reply = try connection.execute([command])[0]
                if let message = reply.errorMessage {
                    if message.hasPrefix("NOSCRIPT") {
                        scriptHashes[script.name] = nil
                        continue
                    }
                    try Self.throwIfTransient(message)
                    throw RedisErrorReply(message).error("Redis script '\(script.name)' failed")
                }
                return reply
            }
            throw YADTQError(.redis, "Redis keeps forgetting script '\(script.name)'", remedy: "Check the Redis server")
        }
    }

    private func scriptHash(_ script: RedisScript, _ connection: RedisConnection) throws -> String {
        if let hash = scriptHashes[script.name] { return hash }
        let reply = try connection.execute([RedisCommand("SCRIPT", "LOAD", script.source)])[0]
        guard let hash = reply.text, reply.errorMessage == nil else {
            try Self.throwIfTransient(reply.errorMessage)
            guard let message = reply.errorMessage else {
                throw YADTQError(
                    .redis, "Redis answered SCRIPT LOAD for '\(script.name)' without a hash",
                    remedy: "YADTQ needs Redis 5 or later with scripting enabled")
            }
            var refusal = RedisErrorReply(message)
            if refusal.kind == .other { refusal.kind = .scriptingUnavailable }
            throw refusal.error("Redis refused to load script '\(script.name)'")
        }
        scriptHashes[script.name] = hash
        return hash
    }

    /// Must be called with `lock` held.
    private func withReconnection<T>(_ body: (RedisConnection) throws -> T) throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        var delay = Duration.milliseconds(50)
        var reported = false
        while true {
            do {
                let connection = try self.connection ?? RedisConnection(url: url)
                self.connection = connection
                let result = try body(connection)
                if reported { logger.notice("Redis at \(url) is reachable again") }
                return result
            } catch let error as YADTQError where Self.isTransient(error) {
                // Only transport failures (hiredis error codes) and LOADING are retried; any
                // other Redis error reply is final.
                connection = nil
                scriptHashes.removeAll()
                if let reconnectFor, clock.now - start + delay > reconnectFor { throw error }
                if !reported {
                    logger.warning("\(error); retrying with backoff")
                    reported = true
                }
                Thread.sleep(forTimeInterval: delay.inSeconds)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}

/// A Lua script that runs inside Redis, so each multi-key state change is atomic
/// and a whole batch costs one round trip.
struct RedisScript: Sendable {
    let name: String
    let source: String
}

extension RedisCommand {
    /// Appends every argument of `other`, in bulk.
    mutating func append(contentsOf other: RedisCommand) {
        appendRaw(other.bytes, lengths: other.lengths)
    }
}
