import CLua
import CLuaSandbox

/// An error raised in Lua, or a limit that stopped it.
struct LuaError: Error {
    /// The message, e.g. `div.lua:3: division by zero` or `timeout after 30s`.
    var message: String
    /// Lua's stack traceback at the error, when the message handler could make one.
    var traceback: String?
    /// The limit that ended the call, if one did rather than an error in the code.
    var limit: PluginLimit?
    /// Whether a stop request (``TaskStopFlag``) ended the call: its task was cancelled.
    var isCancelled = false
}

/// The values a plugin declares besides its `run` function.
struct PluginMetadata {
    /// The longest `description` or `args` a plugin may declare, in bytes: both go into each
    /// worker's plugin list in Redis (written again every 10 s), onto the web page and into
    /// `yadtq-worker --check`'s table, so a plugin must not make them megabytes.
    static let maximumTextBytes = 4096

    var description: String?
    var timeoutSeconds: Double?
    var maxAttempts: Int?
    var args: String?
    /// The schedule's texts and arguments, read by ``PluginSchedule`` (see the registry).
    var every: String?
    var cron: String?
    var scheduleArgs: JSONValue?
}

/// One sandboxed `lua_State` (see Sources/CLuaSandbox and PluginSandbox.swift): owns it, its allocator and
/// hook bookkeeping, and closes it in `deinit`. Every call into Lua goes through a `yadtq_*` entry
/// point, which runs it under `lua_pcall` with a traceback handler and under the time limit given.
/// A call that hits a limit stops the state for good (`yadtq_stop`): it then answers every call
/// with that limit, ``isDamaged`` is set, and `deinit` frees its memory without running its code.
///
/// - Important: Not thread-safe, and deliberately not `Sendable`: a `lua_State` must be used by one
///   thread at a time, and the host functions find this object through the state. Create one per
///   thread (``PluginExecutor`` does).
final class LuaState {
    private let state: OpaquePointer
    /// The allocator's and the hook's user data; must outlive `state`, so it is freed after it.
    private let sandbox: UnsafeMutablePointer<yadtq_sandbox>
    let memoryLimit: Int
    /// Lines logged by the running call (task.log, print), collected by the host functions.
    var log = TaskLog()
    /// What the last host function replied: C copies it after the Swift frame has returned, so it
    /// lives here rather than in the host function.
    private var replyStorage: UnsafeMutableRawPointer?
    private var replyCapacity = 0
    /// Reused for encoding task arguments: this is the hot path.
    private var argumentBuffer: [UInt8] = []
    /// Raised from another thread to stop the running call; kept here because the sandbox
    /// points at its storage.
    private let stopFlag: TaskStopFlag?
    /// Set when cleaning up after a call failed (the state may hold garbage it cannot collect), or
    /// when a limit stopped the state (see `yadtq_stop`): the owner must replace it.
    private(set) var isDamaged = false
    /// A limit stopped the state in the middle of Lua code: it must not be touched, only freed.
    private var isStopped: Bool { sandbox.pointee.stopped != YADTQ_RUNNING }

    /// Creates a state with the sandbox's globals under a memory limit of `memoryLimit` bytes.
    /// - Parameter stopFlag: raised, it stops the running task or top level at the sandbox's
    ///   next check, as a deadline would, with a cancellation error.
    init(memoryLimit: Int, stopFlag: TaskStopFlag? = nil) throws(LuaError) {
        self.memoryLimit = memoryLimit
        self.stopFlag = stopFlag
        sandbox = .allocate(capacity: 1)
        sandbox.initialize(to: yadtq_sandbox())
        sandbox.pointee.limit = max(0, memoryLimit)
        sandbox.pointee.stop_request = stopFlag?.storage
        PluginSandbox.installHostFunctions(in: sandbox)
        var status: Int32 = LUA_OK
        guard let state = yadtq_newstate(sandbox, &status) else {
            sandbox.deallocate()
            throw LuaError(message: "the memory limit (\(Self.formatBytes(memoryLimit))) is too small to create a Lua state")
        }
        guard status == LUA_OK else {
            let message = Self.errorMessage(state, status: status).message
            lua_close(state)
            yadtq_free_all(sandbox)  // off the watchdog's list before the memory goes
            sandbox.deallocate()
            throw LuaError(message: "cannot set up the plugin sandbox: \(message)")
        }
        self.state = state
        sandbox.pointee.host_context = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        if !isStopped { lua_close(state) }  // closing would run code of a stopped state
        yadtq_free_all(sandbox)
        sandbox.deallocate()
        replyStorage?.deallocate()
    }

    /// The object whose state is `state`, for host functions called from Lua.
    static func owning(_ state: OpaquePointer?) -> LuaState {
        Unmanaged<LuaState>.fromOpaque(yadtq_sandbox_of(state).pointee.host_context).takeUnretainedValue()
    }

    /// Bytes the state holds now.
    var memoryInUse: Int { sandbox.pointee.used }

    // MARK: - Plugins

    /// Compiles a plugin's source (text only, never bytecode) and keeps it in the state.
    /// - Parameter chunkName: the file name, which Lua's messages start with (`add.lua:3: ...`).
    /// - Returns: the chunk's reference for ``run(_:arguments:context:timeout:)``.
    func compile(_ source: [UInt8], chunkName: String) -> Result<Int32, LuaError> {
        guard !isStopped else {
            // Compiling runs no task code and has no deadline: only memory can have stopped the state.
            return .failure(LuaError(message: "not compiled: the plugins compiled before it filled the memory limit (\(Self.formatBytes(memoryLimit))); raise it", limit: .memory))
        }
        let status = source.withUnsafeBufferPointer { bytes in
            ("@" + chunkName).withCString { name in
                var chunk = yadtq_chunk(
                    source: UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self),
                    length: bytes.count, chunkname: name, ref: LUA_NOREF)
                let status = yadtq_compile(state, &chunk)
                return (status, chunk.ref)
            }
        }
        if status.0 == YADTQ_STOPPED {
            isDamaged = true
            return .failure(stopError(sandbox.pointee.stopped, traceback: nil))
        }
        defer { lua_settop(state, 0) }
        return status.0 == LUA_OK ? .success(status.1) : .failure(Self.errorMessage(state, status: status.0))
    }

    /// Forgets a compiled chunk.
    func release(_ chunk: Int32) {
        guard !isStopped else { return }
        if yadtq_release(state, chunk) != LUA_OK { isDamaged = true }
        lua_settop(state, 0)
    }

    /// Runs the chunk's top level once, without running a task, and reads what the plugin declares.
    func describe(_ chunk: Int32, timeout: Duration) -> Result<PluginMetadata, LuaError> {
        limited(chunk, timeout: timeout, call: { yadtq_describe(state, chunk) }) {
            func string(_ index: Int32) -> String? {
                lua_type(state, index) == LUA_TSTRING ? LuaValueReader.string(state, at: index) : nil
            }
            for (index, field) in [(Int32(-7), "description"), (-4, "args")] where lua_type(state, index) == LUA_TSTRING {
                let length = lua_rawlen(state, index)
                guard length <= PluginMetadata.maximumTextBytes else {
                    return .failure(
                        LuaError(
                            message: "'\(field)' is \(length) bytes, more than the \(PluginMetadata.maximumTextBytes) allowed: "
                                + "shorten it (it is shown in every worker's plugin list and on the web page)"))
                }
            }
            let timeout = lua_type(state, -6) == LUA_TNUMBER ? lua_tonumberx(state, -6, nil) : nil
            var maxAttempts: Int? = nil
            if lua_type(state, -5) == LUA_TNUMBER {
                // The range every task message is read with: a plugin's default above it would
                // make each of its tasks fail as undecodable.
                let allowed = TaskDeclaration.allowedMaxAttempts
                var isInteger: Int32 = 0
                let count = lua_tointegerx(state, -5, &isInteger)
                guard isInteger != 0, allowed.contains(Int(clamping: count)) else {
                    return .failure(
                        LuaError(
                            message: "'max_attempts' must be an integer from \(allowed.lowerBound) to "
                                + "\(allowed.upperBound), not \(LuaValueReader.numberText(state, at: -5))"))
                }
                maxAttempts = Int(count)
            }
            var scheduleArgs: JSONValue? = nil
            if lua_type(state, -1) == LUA_TTABLE {
                do throws(LuaConversionError) {
                    scheduleArgs = try LuaValueReader.read(state, at: -1, root: "schedule_args", budget: PluginSandbox.maximumResultBytes)
                } catch where error.stoppedBy != YADTQ_RUNNING {
                    return .failure(stopError(error.stoppedBy, traceback: nil))
                } catch {
                    return .failure(LuaError(message: "'schedule_args': \(error.description)"))
                }
            }
            return .success(
                PluginMetadata(
                    description: string(-7), timeoutSeconds: timeout, maxAttempts: maxAttempts, args: string(-4),
                    every: string(-3), cron: string(-2), scheduleArgs: scheduleArgs))
        }
    }

    /// Runs one task: a fresh instance of the chunk, `run(args, task)`, its result as JSON.
    /// Logs and progress are in ``log`` and ``progress`` afterwards.
    func run(_ chunk: Int32, arguments: [JSONValue], context: TaskContext, timeout: Duration) -> Result<JSONValue, LuaError> {
        log = TaskLog()
        sandbox.pointee.has_progress = 0
        argumentBuffer.removeAll(keepingCapacity: true)
        LuaValueEncoding.appendArray(arguments, to: &argumentBuffer)
        var id = context.id
        return limited(chunk, timeout: timeout) {
            argumentBuffer.withUnsafeBytes { arguments in
                id.withUTF8 { id in
                    var task = yadtq_task(
                        ref: chunk,
                        args: arguments.baseAddress?.assumingMemoryBound(to: CChar.self), args_length: arguments.count,
                        id: UnsafeRawPointer(id.baseAddress)?.assumingMemoryBound(to: CChar.self), id_length: id.count,
                        attempt: lua_Integer(context.attempt), max_attempts: lua_Integer(context.maxAttempts))
                    return yadtq_run(state, &task)
                }
            }
        } results: {
            do throws(LuaConversionError) {
                return .success(try LuaValueReader.read(state, at: -1, root: "result", budget: PluginSandbox.maximumResultBytes))
            } catch where error.stoppedBy != YADTQ_RUNNING {
                return .failure(stopError(error.stoppedBy, traceback: nil))
            } catch where error.isTooLarge {
                return .failure(LuaError(message: "result is longer than \(Self.formatBytes(PluginSandbox.maximumResultBytes)) as JSON "
                    + "(reached at \(error.path)): return less, e.g. a key to data stored elsewhere"))
            } catch {
                return .failure(LuaError(message: "result is not JSON-encodable: \(error.description)"))
            }
        }
    }

    /// The last fraction the running or last task passed to `task.progress`.
    var progress: Double? { sandbox.pointee.has_progress != 0 ? sandbox.pointee.progress : nil }

    /// Runs `call` (a `yadtq_*` entry point for `chunk`) under the time limit and reads its results
    /// with `results`, still under it: reading a value can take long (see ``LuaValueReader``). If
    /// the call failed, drops the chunk's environment (a successful call does so itself); after a
    /// limit was hit, also resets the limits and collects all garbage so the next call starts clean.
    private func limited<T>(
        _ chunk: Int32, timeout: Duration, call: () -> Int32, results: () -> Result<T, LuaError>
    ) -> Result<T, LuaError> {
        guard !isStopped else { return .failure(stopError(sandbox.pointee.stopped, traceback: nil)) }
        deadlineTimeout = timeout
        yadtq_set_deadline(sandbox, yadtq_now_ns() &+ Self.nanoseconds(timeout))
        let status = call()
        let read = status == LUA_OK ? results() : nil
        yadtq_set_deadline(sandbox, 0)
        if status == YADTQ_STOPPED {
            // No Lua code ran after the limit; the state is abandoned and freed with this object.
            isDamaged = true
            let position = withUnsafeBytes(of: &sandbox.pointee.stopped_at) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return .failure(stopError(sandbox.pointee.stopped, traceback: position.isEmpty ? nil : position))
        }
        let result: Result<T, LuaError>
        // Lua's own "not enough memory" (status LUA_ERRMEM) only comes from requests the allocator
        // never saw twice, e.g. a block larger than the address space; it is a memory error as well.
        let outOfMemory = status == LUA_ERRMEM
        if let read {
            result = read
        } else {
            let error = Self.errorMessage(state, status: status)
            result = .failure(outOfMemory ? LuaError(message: memoryMessage, traceback: error.traceback, limit: .memory) : error)
        }
        lua_settop(state, 0)
        if status != LUA_OK {  // on success, the call itself dropped the task's environment
            if yadtq_finish(state, chunk, outOfMemory ? 1 : 0) != LUA_OK || (outOfMemory && memoryInUse > memoryLimit / 2) {
                isDamaged = true  // the task's data could not be dropped: it must not weigh on the next task
            }
            if !isStopped { lua_settop(state, 0) }
        }
        return result
    }

    /// The error of an attempt stopped by its stop flag.
    static let cancelledMessage = "cancelled while running: stopped by an operator's cancel request"

    /// The time limit of the last call, for its timeout message.
    private var deadlineTimeout: Duration = .zero

    private var memoryMessage: String { "memory limit (\(Self.formatBytes(memoryLimit))) exceeded" }

    /// The limit (or stop request) `reason` (`YADTQ_STOPPED_*`) that stopped the last call, or the
    /// reading of its results, as that call's error.
    private func stopError(_ reason: Int32, traceback: String?) -> LuaError {
        if reason == YADTQ_STOPPED_CANCELLED {
            return LuaError(message: Self.cancelledMessage, traceback: traceback, isCancelled: true)
        }
        if reason == YADTQ_STOPPED_TIME {
            return LuaError(message: "timeout after \(Self.formatSeconds(deadlineTimeout))", traceback: traceback, limit: .time)
        }
        return LuaError(message: memoryMessage, traceback: traceback, limit: .memory)
    }

    /// The error a failed protected call left on top of the stack, message and traceback each cut
    /// to their cap (`PluginSandbox.maximumErrorBytes`, `maximumTracebackBytes`) before they are
    /// copied: errors are stored with the task, and Lua code can raise any string.
    private static func errorMessage(_ state: OpaquePointer, status: Int32) -> LuaError {
        guard lua_type(state, -1) == LUA_TSTRING else {
            return LuaError(message: "Lua error \(status) without a message")
        }
        var length = 0
        let bytes = UnsafeRawBufferPointer(start: lua_tolstring(state, -1, &length)!, count: length)
        // The message handler appends luaL_traceback's "\nstack traceback:\n\t..." to the message.
        let marker = Array("\nstack traceback:\n".utf8)
        let tail = bytes.suffix(PluginSandbox.maximumTracebackBytes + marker.count)
        let split = lastRange(of: marker, in: tail)
        let message = UnsafeRawBufferPointer(rebasing: bytes[..<(split?.lowerBound ?? bytes.endIndex)])
        // The handler cut a longer message to 4 KiB + 1 bytes and kept its length for the note.
        let messageLength = yadtq_sandbox_of(state).pointee.error_length
        let extent: ErrorText.Extent = messageLength > message.count ? .beginning(ofBytes: Int(messageLength)) : .whole
        let kept = ErrorText.trimmed(message, limit: PluginSandbox.maximumErrorBytes, extent: extent)
        guard let split else { return LuaError(message: kept) }
        return LuaError(
            message: kept,
            traceback: ErrorText.trimmed(
                UnsafeRawBufferPointer(rebasing: bytes[split.upperBound...]), limit: PluginSandbox.maximumTracebackBytes))
    }

    private static func lastRange(of marker: [UInt8], in bytes: Slice<UnsafeRawBufferPointer>) -> Range<Int>? {
        guard bytes.count >= marker.count else { return nil }
        for start in stride(from: bytes.endIndex - marker.count, through: bytes.startIndex, by: -1)
        where bytes[start..<start + marker.count].elementsEqual(marker) {
            return start..<start + marker.count
        }
        return nil
    }

    // MARK: - Host function support

    /// Hands `bytes` to the trampoline, which copies them once the calling Swift frame has returned.
    func reply(_ kind: Int32, _ bytes: some Collection<UInt8>, into reply: UnsafeMutablePointer<yadtq_reply>) -> Int32 {
        if bytes.count > replyCapacity {
            replyStorage?.deallocate()
            replyCapacity = max(bytes.count, 2 * replyCapacity, 256)
            replyStorage = .allocate(byteCount: replyCapacity, alignment: 8)
        }
        let buffer = UnsafeMutableRawBufferPointer(start: replyStorage, count: bytes.count)
        buffer.copyBytes(from: bytes)
        reply.pointee.data = UnsafeRawPointer(replyStorage)?.assumingMemoryBound(to: CChar.self)
        reply.pointee.length = bytes.count
        return kind
    }

    // MARK: - Formatting

    private static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        guard seconds < 1_000_000_000 else { return 1_000_000_000 * 1_000_000_000 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// `30s`, `0.2s`
    static func formatSeconds(_ duration: Duration) -> String {
        let seconds = Double(nanoseconds(duration)) / 1e9
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }

    /// `64 MiB`, `512 KiB`, `1000 bytes`
    static func formatBytes(_ bytes: Int) -> String {
        if bytes > 0, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes > 0, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

/// The lines one task logs, bounded so that a chatty plugin cannot exhaust the worker's memory
/// (log lines live outside the Lua state's memory limit) or bloat the task's record.
struct TaskLog {
    static let maximumLines = 1000
    static let maximumLineBytes = 4096
    static let maximumTotalBytes = 256 << 10

    private(set) var lines: [String] = []
    private var droppedLines = 0
    private var totalBytes = 0

    /// The most bytes the next line may keep; 0 once the log is full.
    var roomForNextLine: Int {
        lines.count < Self.maximumLines ? min(Self.maximumLineBytes, Self.maximumTotalBytes - totalBytes) : 0
    }

    /// Keeps `line` (UTF-8, invalid bytes replaced), cut to ``roomForNextLine``, or counts it as dropped.
    mutating func append(_ line: [UInt8]) {
        let room = roomForNextLine
        guard room > 0 else {
            droppedLines += 1
            return
        }
        // A line longer than the room was built only up to it (see PluginSandbox.log).
        let text = line.withUnsafeBytes { ErrorText.trimmed($0, limit: room, extent: .unknown) }
        totalBytes += text.utf8.count
        lines.append(text)
    }

    /// The lines, with a last one saying how many were dropped, if any.
    var finished: [String] {
        droppedLines == 0 ? lines : lines + [
            "(\(droppedLines) more log lines dropped: at most \(Self.maximumLines) lines and \(LuaState.formatBytes(Self.maximumTotalBytes)) are kept per attempt)"]
    }
}
