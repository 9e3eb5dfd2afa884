import CHiredis
import Foundation

/// One hiredis `redisContext`: a blocking connection to one Redis server.
///
/// - Important: Not thread-safe and blocking. Use it from one thread at a time,
///   never from Swift's cooperative pool; ``RedisClient`` adds the locking and reconnection.
final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    let url: RedisURL
    /// How long a send or a reply may take before the connection counts as broken.
    private(set) var timeout: Duration

    /// Connects, authenticates and selects the database of `url`; `timeout` bounds the
    /// connect and then every send and reply (see ``limit(to:)``).
    init(url: RedisURL, timeout: Duration) throws {
        self.url = url
        self.timeout = timeout
        let limit = timeval(timeout)
        guard let context = redisConnectWithTimeout(url.host, url.port, limit) else {
            throw YADTQError(
                .redis, "cannot allocate a connection to \(url)", remedy: "The machine is out of memory")
        }
        if context.pointee.err != 0 {
            let error = Self.error(context, "cannot connect to \(url)", url: url, timeout: timeout)
            redisFree(context)
            throw error
        }
        self.context = context
        redisSetTimeout(context, limit)
        redisEnableKeepAlive(context)
        var setup: [RedisCommand] = []
        if let password = url.password {
            setup.append(url.username.map { RedisCommand("AUTH", $0, password) } ?? RedisCommand("AUTH", password))
        }
        if url.database != 0 { setup.append(RedisCommand("SELECT", String(url.database))) }
        for reply in try execute(setup) {
            if let message = reply.errorMessage {
                throw RedisErrorReply(message).error(
                    "\(url) refused the connection set-up",
                    otherRemedy: "Check the user, password and database number in YADTQ_REDIS (a user needs Redis 6 or later)")
            }
        }
    }

    deinit { redisFree(context) }

    /// Bounds every later send and reply by `timeout` (two `setsockopt` calls, made only
    /// when it changes).
    func limit(to timeout: Duration) {
        guard timeout != self.timeout else { return }
        self.timeout = timeout
        redisSetTimeout(context, timeval(timeout))
    }

    /// Sends every command, then reads every reply: one round trip for the whole pipeline.
    /// A Redis error reply is returned as `.error`, not thrown; a broken connection throws,
    /// after which this connection must be discarded.
    func execute(_ commands: [RedisCommand]) throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        let request = Self.encode(commands)
        let status = request.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
        }
        if status != REDIS_OK { throw Self.error(context, "cannot send a command to \(url)", url: url, timeout: timeout) }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                throw Self.error(context, "lost the connection to \(url)", url: url, timeout: timeout)
            }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            replies.append(Self.convert(reply))
            freeReplyObject(raw)
        }
        return replies
    }

    /// The whole pipeline in the Redis protocol, in one buffer sized up front. Written here
    /// rather than by hiredis's `redisAppendCommandArgv`, whose printf-style formatting of
    /// every argument's length was the workers' largest single cost in Redis I/O.
    private static func encode(_ commands: [RedisCommand]) -> [UInt8] {
        var size = 0
        for command in commands {
            size += 3 + decimalWidth(command.argumentCount)  // *<count>\r\n
            for length in command.lengths { size += 5 + decimalWidth(length) + length }  // $<length>\r\n<bytes>\r\n
        }
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let base = buffer.baseAddress!
            var at = 0
            func header(_ marker: UInt8, _ value: Int) {
                base[at] = marker
                at += 1 + decimalWidth(value)
                var rest = value
                var digit = at - 1
                repeat {
                    base[digit] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                    digit -= 1
                } while rest > 0
                endLine()
            }
            func endLine() {
                base[at] = UInt8(ascii: "\r")
                base[at + 1] = UInt8(ascii: "\n")
                at += 2
            }
            for command in commands {
                header(UInt8(ascii: "*"), command.argumentCount)
                command.bytes.withUnsafeBytes { bytes in
                    var offset = 0
                    for length in command.lengths {
                        header(UInt8(ascii: "$"), length)
                        if length > 0 {
                            UnsafeMutableRawPointer(base + at).copyMemory(from: bytes.baseAddress! + offset, byteCount: length)
                        }
                        at += length
                        offset += length
                        endLine()
                    }
                }
            }
            initialized = at
        }
    }

    private static func decimalWidth(_ value: Int) -> Int {
        var width = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            width += 1
        }
        return width
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = value.str else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: value.len))
        }
        switch value.type {
        case REDIS_REPLY_STRING: return .string(bytes())
        case REDIS_REPLY_INTEGER: return .integer(Int64(value.integer))
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = value.element[index] { elements.append(convert(element)) }
            }
            return .array(elements)
        default: return .null
        }
    }

    /// The error of a failed connect, send or reply: hiredis's code and text, and what to do.
    /// A socket that waited `timeout` in vain (hiredis gives the `EAGAIN` of a blocking read or
    /// write that timed out, or a connect's `ETIMEDOUT`) is said as such: Redis may well be
    /// running, but it or the network to it is silent, which "lost the connection" and "check
    /// that Redis is running" would hide.
    private static func error(
        _ context: UnsafeMutablePointer<redisContext>, _ message: String, url: RedisURL, timeout: Duration
    ) -> YADTQError {
        let text = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if context.pointee.err == REDIS_ERR_IO && timedOutTexts.contains(text) {
            return YADTQError(
                .redis, "no answer from \(url) within \(timeout)", libraryCode: context.pointee.err, libraryMessage: text,
                remedy: "Redis or the network to it is silent: a frozen or overloaded server, or a network that drops "
                    + "packets. Check that Redis answers from this machine (redis-cli -h HOST -p PORT ping)")
        }
        return YADTQError(
            .redis, message, libraryCode: context.pointee.err, libraryMessage: text,
            remedy: "Check that Redis is running and that YADTQ_REDIS points at it (scripts/stack up starts one)")
    }

    /// The texts of the errors of a socket whose timeout ran out.
    private static let timedOutTexts = Set([EAGAIN, EWOULDBLOCK, ETIMEDOUT].map { String(cString: strerror($0)) })
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
