import CLua
import CLuaSandbox

/// The environment plugin code runs in, and the functions in it that are written in Swift.
///
/// A plugin file is compiled once (text only) and, for every task, its top level runs again in a
/// fresh global table, so neither globals nor the file's top-level locals outlive a task; the
/// `run` function it returns is then called as `run(args, task)`. What the code sees (built in C by
/// `yadtq_open_sandbox_body`, Sources/CLuaSandbox/sandbox.c):
///
/// - base functions: `assert error getmetatable ipairs next pairs pcall xpcall rawequal rawget
///   rawlen select setmetatable tonumber tostring type _VERSION _G`, and `print` (which logs);
/// - `load(chunk [, name [, "t" [, env]]])`: text chunks only; without `env`, in a fresh sandbox
///   environment;
/// - libraries `string` (without `dump`), `table`, `math`, `utf8`, `coroutine`, `os` (only `clock`,
///   `date`, `time`), all read-only and shared by all plugins; `math.random` is seeded from the
///   system's entropy before every task, so that its shared generator carries nothing over;
/// - `json.encode(value)`, `json.decode(text)`, `json.null` (see LuaValueConversion.swift);
/// - the `task` argument: `task.id`, `task.attempt`, `task.max_attempts`, `task.log(...)`,
///   `task.progress(fraction)` (0...1), `task.sleep(seconds)` (sleeps without spinning, and fails
///   with the timeout if the task's deadline comes first, or stops within 50 ms at a cancel).
///
/// Not there: `io`, `debug`, `package`, `require`, `dofile`, `loadfile`, `collectgarbage`, `rawset`,
/// the rest of `os`. Metatables of strings, of the environment and of the libraries are protected,
/// so `setmetatable(_G, ...)` fails; `setmetatable` refuses `__gc`, because finalizers run outside
/// any task's time limit.
///
/// Limits (Sources/CLuaSandbox/sandbox.c has the details):
///
/// - Time: a hook checks the deadline at every function call, Lua or C, and every 100 VM
///   instructions, down to every instruction once the task has made a long string (one string
///   comparison can take 0.2 s: `yadtq_hook_count`); the allocator every MiB of growth and
///   before each emergency collection (one concatenation can make Lua collect a full state). A limit is never raised as a Lua error:
///   Lua runs message handlers and `__close` handlers while such an error unwinds (with hooks
///   off, when it came from a hook), and `load` catches errors raised in its reader, so Lua code
///   could loop on, swallow or replace it. `yadtq_stop` jumps straight back to the entry point
///   instead; no more Lua code runs, and ``LuaState`` abandons the state (its blocks are freed
///   without running its code) for its owner to replace. A raised ``TaskStopFlag`` (the task
///   was cancelled) stops the code at the same checks and the same way.
/// - Memory: the allocator refuses growth past the limit; Lua then collects and asks again, and
///   the second refusal stops the state the same way. A library function's buffer (luaL_Buffer) is
///   not asked for again: its refusal stops the state at the next request, hook or return.
/// - C library calls cannot be interrupted, so those whose work is not bounded by what they
///   produce count it themselves: pattern matching (the sandbox's own matcher, checking the
///   deadline every 4096 steps, a set's bytes and a replacement's escapes included), plain
///   `string.find`, `string.rep` (by doubling), `table.move` and the shifts of `table.insert` and
///   `table.remove` (in slices, each a call), `table.concat` and `table.unpack` (the deadline every
///   1024 elements: each may sit behind a long `__index` chain) and `table.sort` (its default order is a function,
///   so each comparison is a call); `load` feeds a text to Lua's parser, which runs no hook, in
///   pieces of 1 KiB, each a call the hook sees, also when a reader function returns it.
/// - What leaves the sandbox is measured as the bytes it becomes, while it is produced, because
///   the memory limit counts a string once however often it is referred to: a result is at most
///   ``maximumResultBytes`` of JSON, a `json.encode` ``maximumEncodedBytes``, a `json.decode` input
///   ``maximumDecodedBytes``, a log line and the attempt's log as ``TaskLog`` says, an error message
///   ``maximumErrorBytes`` and its traceback ``maximumTracebackBytes``. Such values are read under
///   the running call's deadline (``LuaValueReader``), and the trampoline stops the state when a
///   host function returns past it.
/// - Where no check runs (a garbage collection runs no hook, and one over weak-keyed tables chained
///   by their values takes time quadratic in their entries), the C half's watchdog stops the call
///   by a signal half a second after its deadline or its stop request.
///
/// Not guaranteed: one VM instruction or one C call between two checks runs to its end; each is
/// bounded by the memory limit (comparing two long strings, `string.upper` of one), so
/// the overshoot stays far under a second at the default 64 MiB but grows with the limit.
/// Compiling a plugin file is not timed (it is bounded by the file's size). Memory outside the
/// Lua state is not counted: the Swift copies that results, `json.encode` and `json.decode` go
/// through (a multiple of the caps above) and the task's log (``TaskLog``'s caps).
enum PluginSandbox {
    /// The most bytes a task's result may have as JSON.
    static let maximumResultBytes = 1 << 20
    /// The most bytes of JSON text one `json.encode` may make.
    static let maximumEncodedBytes = 8 << 20
    /// The longest text one `json.decode` takes.
    static let maximumDecodedBytes = 8 << 20
    /// The most bytes of an error message, and of its traceback, that leave the sandbox.
    static let maximumErrorBytes = 4096
    static let maximumTracebackBytes = 16 << 10

    /// Registers the Swift host functions in the state's bookkeeping, before the state is built.
    static func installHostFunctions(in sandbox: UnsafeMutablePointer<yadtq_sandbox>) {
        yadtq_set_host(sandbox, Int32(YADTQ_HOST_LOG), { state, reply in PluginSandbox.log(state, reply!) })
        yadtq_set_host(sandbox, Int32(YADTQ_HOST_JSON_ENCODE), { state, reply in PluginSandbox.jsonEncode(state, reply!) })
        yadtq_set_host(sandbox, Int32(YADTQ_HOST_JSON_DECODE), { state, reply in PluginSandbox.jsonDecode(state, reply!) })
    }

    // Host functions: called from Lua through `yadtq_trampoline`. They must not call any Lua API
    // function that can raise; they answer through `reply` and the trampoline does the rest.

    /// `task.log(...)` and `print(...)`: one line, the arguments separated by spaces. Strings as
    /// they are (invalid UTF-8 replaced: a log is for people), tables as JSON where they have a JSON
    /// form, other values as `tostring` would show them (without calling `__tostring`). The line is
    /// built only up to the room the log has left (see ``TaskLog``): one call cannot copy more,
    /// however long its strings or however often they repeat.
    private static func log(_ state: OpaquePointer?, _ reply: UnsafeMutablePointer<yadtq_reply>) -> Int32 {
        let owner = LuaState.owning(state)
        let room = owner.log.roomForNextLine
        var line: [UInt8] = []
        for index in 1...max(1, lua_gettop(state)) where line.count <= room && index <= lua_gettop(state) {
            if index > 1 { line.append(UInt8(ascii: " ")) }
            appendLogText(state, at: index, to: &line, room: room + 1 - line.count)
        }
        owner.log.append(line)
        return Int32(YADTQ_REPLY_NOTHING)
    }

    /// Appends the text of the value at `index`, or at least its first `room` bytes.
    private static func appendLogText(_ state: OpaquePointer?, at index: Int32, to line: inout [UInt8], room: Int) {
        switch lua_type(state, index) {
        case LUA_TSTRING:
            var length = 0
            let bytes = lua_tolstring(state, index, &length)!
            line.append(contentsOf: UnsafeRawBufferPointer(start: bytes, count: min(length, max(0, room))))
        case LUA_TNUMBER:
            line.append(contentsOf: LuaValueReader.numberText(state!, at: index).utf8)
        case LUA_TBOOLEAN:
            line.append(contentsOf: (lua_toboolean(state, index) != 0 ? "true" : "false").utf8)
        case LUA_TNIL:
            line.append(contentsOf: "nil".utf8)
        case LUA_TTABLE:
            do throws(LuaConversionError) {
                try LuaValueReader.read(state!, at: index, root: "value", budget: max(0, room)).write(to: &line)
                return
            } catch where error.isTooLarge {
                line.append(contentsOf: "\(typeAndAddress(state, at: index)) (too large to log as JSON)".utf8)
                return
            } catch {}
            fallthrough
        default:
            if lua_type(state, index) == LUA_TLIGHTUSERDATA && lua_touserdata(state, index) == nil {
                line.append(contentsOf: "null".utf8)
            } else {
                line.append(contentsOf: typeAndAddress(state, at: index).utf8)
            }
        }
    }

    /// `table: 0x...`, as `tostring` shows a value without `__tostring`.
    private static func typeAndAddress(_ state: OpaquePointer?, at index: Int32) -> String {
        let name = String(cString: lua_typename(state, lua_type(state, index)))
        return "\(name): \(lua_topointer(state, index).map { "\($0)" } ?? "?")"
    }

    /// `json.encode(value)`: compact JSON text, keys sorted; fails for values without a JSON form.
    private static func jsonEncode(_ state: OpaquePointer?, _ reply: UnsafeMutablePointer<yadtq_reply>) -> Int32 {
        let owner = LuaState.owning(state)
        guard lua_gettop(state) >= 1 else {
            return owner.reply(Int32(YADTQ_REPLY_ERROR), "json.encode expects a value".utf8, into: reply)
        }
        do throws(LuaConversionError) {
            let value = try LuaValueReader.read(state!, at: 1, root: "value", budget: maximumEncodedBytes)
            return owner.reply(Int32(YADTQ_REPLY_STRING), value.jsonBytes, into: reply)
        } catch where error.isTooLarge {
            let message = "json.encode: the JSON text would be longer than \(LuaState.formatBytes(maximumEncodedBytes)) "
                + "(reached at \(error.path)); encode smaller pieces"
            return owner.reply(Int32(YADTQ_REPLY_ERROR), message.utf8, into: reply)
        } catch {
            return owner.reply(Int32(YADTQ_REPLY_ERROR), "json.encode: \(error.description)".utf8, into: reply)
        }
    }

    /// `json.decode(text)`: the Lua value of one JSON document; fails with the parser's reason.
    private static func jsonDecode(_ state: OpaquePointer?, _ reply: UnsafeMutablePointer<yadtq_reply>) -> Int32 {
        let owner = LuaState.owning(state)
        guard lua_type(state, 1) == LUA_TSTRING else {
            let type = String(cString: lua_typename(state, lua_type(state, 1)))
            return owner.reply(Int32(YADTQ_REPLY_ERROR), "json.decode expects a string of JSON text, not \(type)".utf8, into: reply)
        }
        var length = 0
        let bytes = lua_tolstring(state, 1, &length)!
        guard length <= maximumDecodedBytes else {
            let message = "json.decode: the text is \(length) bytes, more than the \(LuaState.formatBytes(maximumDecodedBytes)) one call decodes; decode smaller documents"
            return owner.reply(Int32(YADTQ_REPLY_ERROR), message.utf8, into: reply)
        }
        do throws(JSONParseError) {
            let value = try JSONValue(parsing: UnsafeRawBufferPointer(start: bytes, count: length))
            var encoded: [UInt8] = []
            LuaValueEncoding.append(value, to: &encoded)
            return owner.reply(Int32(YADTQ_REPLY_VALUE), encoded, into: reply)
        } catch {
            return owner.reply(Int32(YADTQ_REPLY_ERROR), "json.decode: \(error.description)".utf8, into: reply)
        }
    }
}
