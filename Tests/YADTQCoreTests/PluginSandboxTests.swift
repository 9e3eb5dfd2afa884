import Testing
import YADTQCore

/// Hostile plugins: each must end as a failed (not permanent) attempt with a clear message, and the
/// same executor must then run a normal task.
@Suite("Plugin sandbox")
struct PluginSandboxTests {
    /// Runs `body` as plugin `hostile`, checks the failure, then checks that `add` still works;
    /// returns how long the hostile attempt took.
    @discardableResult
    private func expectFailure(
        _ body: String, contains expected: String, limits: PluginLimits = PluginFolder.testLimits,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Duration {
        let folder = try PluginFolder(["hostile.lua": plugin(body), "add.lua": plugin("return args[1] + args[2]")], limits: limits)
        let start = ContinuousClock.now
        let failure = folder.run("hostile").failure
        let elapsed = ContinuousClock.now - start
        #expect(failure?.message.contains(expected) == true, "got \(String(describing: failure?.message))", sourceLocation: sourceLocation)
        #expect(failure?.isPermanent == false, sourceLocation: sourceLocation)
        #expect(folder.run("add", [.int(2), .int(3)]).value == .int(5), sourceLocation: sourceLocation)
        return elapsed
    }

    /// Like `expectFailure`, and the hostile attempt must end within a few times its time
    /// limit: what this guards against ran for minutes or for ever, and a busy machine must
    /// not fail the check. Only the attempt is timed, not the folder's making.
    private func expectStopped(
        _ body: String, contains expected: String, limits: PluginLimits = PluginFolder.testLimits,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let elapsed = try expectFailure(body, contains: expected, limits: limits, sourceLocation: sourceLocation)
        #expect(elapsed < limits.timeout * 5 + .seconds(1), "took \(elapsed)", sourceLocation: sourceLocation)
    }

    /// Lua's collector runs no hook: the sandbox's watchdog stops an attempt stuck in it half a
    /// second after its time limit, and the executor's next task runs on a fresh state.
    @Test func collectorStoppedAtTheTimeLimit() throws {
        let limits = PluginLimits(timeout: .seconds(1), memoryBytes: 64 << 20)
        let folder = try PluginFolder(
            ["chain.lua": try weakKeyChainPlugin(), "add.lua": plugin("return args[1] + args[2]")], limits: limits)
        let start = ContinuousClock.now
        let failure = try #require(folder.run("chain").failure)
        let elapsed = ContinuousClock.now - start
        #expect(failure.message.hasPrefix("timeout after 1s") && !failure.isPermanent, "\(failure.message)")
        #expect(failure.traceback?.contains("Lua's garbage collector") == true, "\(String(describing: failure.traceback))")
        #expect(elapsed < .seconds(3), "took \(elapsed) against a 1 s limit")
        #expect(folder.run("add", [.int(2), .int(3)]).value == .int(5))
    }

    @Test func infiniteLoopTimesOut() throws {
        try expectFailure("while true do end", contains: "timeout after 0.2s")
    }

    @Test func timeoutCannotBeCaught() throws {
        try expectFailure("while true do pcall(function() while true do end end) end", contains: "timeout after 0.2s")
        try expectFailure("while true do xpcall(function() while true do end end, function(m) return m end) end", contains: "timeout after 0.2s")
        try expectFailure("""
            while true do
              local co = coroutine.create(function() while true do end end)
              coroutine.resume(co)
            end
            """, contains: "timeout after 0.2s")
    }

    /// Code that runs while an error unwinds (message handlers, __close handlers) runs with Lua's
    /// hooks off when the error came from a hook: the limit must not depend on hooks there.
    @Test func timeoutCannotBeOutrunByHandlers() throws {
        try expectStopped("return xpcall(function() while true do end end, function() while true do end end)", contains: "timeout after 0.2s")
        try expectStopped("return xpcall(function() error('x') end, function() while true do end end)", contains: "timeout after 0.2s")
        try expectStopped("""
            return coroutine.wrap(function()
              local guard <close> = setmetatable({}, {__close = function() while true do end end})
              while true do end
            end)()
            """, contains: "timeout after 0.2s")
        try expectStopped("""
            local mt = {}
            local object = setmetatable({}, mt)
            mt.__close = function() while true do end end
            local guard <close> = object
            while true do end
            """, contains: "timeout after 0.2s")
        try expectStopped("""
            local co = coroutine.create(function()
              local guard <close> = setmetatable({}, {__close = function() while true do end end})
              coroutine.yield()
            end)
            coroutine.resume(co)
            local t = os.clock() while os.clock() - t < 1 do end
            """, contains: "timeout after 0.2s")
    }

    /// `load` calls its reader in protected mode: a limit hit inside the reader must not come back
    /// as load's error message.
    @Test func loadReaderCannotSwallowLimits() throws {
        try expectStopped("local f, m = load(function() while true do end end) return {escaped = true, m}", contains: "timeout after 0.2s")
        try expectStopped("for i = 1, 1e9 do load(function() while true do end end) end return {escaped = true}", contains: "timeout after 0.2s")
        try expectStopped("""
            local f, m = load(function() local t = {} for i = 1, 1e9 do t[i] = {} end end)
            return {escaped = true, m}
            """, contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
    }

    /// Lua's parser has no hook: `load` of a long text must still stop at the deadline.
    @Test func loadOfALongTextStopsInTime() throws {
        try expectStopped(#"return load("return " .. string.rep("1+", 24e6) .. "1")"#, contains: "timeout after 0.2s",
                          limits: PluginLimits(timeout: .milliseconds(200), memoryBytes: 160 << 20))
        let folder = try PluginFolder(["p.lua": plugin(#"""
            local f = load(string.rep(" ", 100000) .. "return ... + 1") local g, err = load("syntax error here")
            return {f(41), err}
            """#)])
        #expect(folder.run("p").value == .array([.int(42), .string(#"[string "syntax error here"]:1: syntax error near 'error'"#)]))
    }

    /// A memory error cannot be caught, replaced by a __close handler's error or an xpcall handler's
    /// result, or hidden in a coroutine.
    @Test func memoryErrorCannotBeReplaced() throws {
        try expectStopped("""
            pcall(function()
              local guard <close> = setmetatable({}, {__close = function() error("replaced") end})
              local t = {} for i = 1, 1e9 do t[i] = {} end
            end)
            return "escaped"
            """, contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
        try expectStopped("""
            xpcall(function() local t = {} for i = 1, 1e9 do t[i] = {} end end, function() return "fine" end)
            return "escaped"
            """, contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
        try expectStopped("""
            local ok = pcall(coroutine.wrap(function() local t = {} for i = 1, 1e9 do t[i] = {} end end))
            return "escaped"
            """, contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
    }

    /// One call into the C library must not run past the deadline: pattern matching backtracks
    /// exponentially, plain search is #s * #p, and some functions loop without allocating.
    @Test func libraryCallsStopAtTheDeadline() throws {
        try expectStopped(#"return string.find(("a"):rep(24), ("a*"):rep(12) .. "b")"#, contains: "timeout after 0.2s")
        try expectStopped(#"return string.match(("a"):rep(24), ("a*"):rep(12) .. "b")"#, contains: "timeout after 0.2s")
        try expectStopped(#"return ("a"):rep(30):gsub(("a?"):rep(30) .. ("a"):rep(30), "")"#, contains: "timeout after 0.2s")
        try expectStopped(#"for x in ("a"):rep(24):gmatch(("a*"):rep(12) .. "b") do end"#, contains: "timeout after 0.2s")
        try expectStopped(#"return ("a"):rep(1 << 20):find(".-b")"#, contains: "timeout after 0.2s")
        try expectStopped(#"return ("(("):rep(1 << 19):find("%b()")"#, contains: "timeout after 0.2s")
        try expectStopped(#"return ("a"):rep(1 << 22):find(("a"):rep(1 << 21) .. "b", 1, true)"#, contains: "timeout after 0.2s", limits: PluginLimits(timeout: .milliseconds(200), memoryBytes: 64 << 20))
        try expectStopped("return table.move({}, 1, 1e8, 2)", contains: "timeout after 0.2s")
        try expectStopped("local t = {} table.move({}, 1, 1e8, 2, t) return 1", contains: "timeout after 0.2s")
    }

    /// What leaves the sandbox is read under the task's deadline (a plugin file's top level, under
    /// the load's): `lua_next` walks every empty slot of a table, so each of 300,000 references to a
    /// table of a million emptied slots costs a millisecond to read and only 3 bytes of JSON.
    @Test func readingValuesStopsAtTheDeadline() throws {
        let emptied = """
            local e = {} for i = 1, 1 << 20 do e[i] = true end for i = 1, 1 << 20 do e[i] = nil end
            local t = {} for i = 1, 300000 do t[i] = e end
            """
        let limits = PluginLimits(timeout: .seconds(1), memoryBytes: 64 << 20)
        try expectStopped("\(emptied) return t", contains: "timeout after 1s", limits: limits)
        try expectStopped("\(emptied) return #json.encode(t)", contains: "timeout after 1s", limits: limits)
        let start = ContinuousClock.now
        let folder = try PluginFolder(["report.lua": "\(emptied)\nreturn {every = \"1h\", schedule_args = t, run = function() end}\n"],
                                      loadLimits: limits)
        let loadError = folder.registry.info(for: "report")?.loadError
        #expect(loadError?.message.contains("its top level did not finish: timeout after 1s") == true, "\(String(describing: loadError))")
        #expect(ContinuousClock.now - start < .seconds(2), "took \(ContinuousClock.now - start)")
    }

    /// Single instructions and calls that touch a lot of memory, repeated: the hook runs often enough
    /// (every call, every 100 instructions) that the overshoot stays small.
    @Test func expensiveStepsStopInTime() throws {
        let limits = PluginLimits(timeout: .milliseconds(500), memoryBytes: 64 << 20)
        try expectStopped("""
            local a = string.rep("x", 16 << 20) local b = a:sub(1, -2) .. "x"
            while true do local c = a < b and a == b end
            """, contains: "timeout after 0.5s", limits: limits)
        try expectStopped("""
            local a = string.rep("x", 16 << 20)
            while true do local c = a:upper() end
            """, contains: "timeout after 0.5s", limits: limits)
        try expectStopped("""
            local t = {} for i = 1, 1e6 do t[i] = i end
            while true do table.insert(t, 1, 0) table.remove(t, 1) end
            """, contains: "timeout after 0.5s", limits: limits)
        // Memory nearly full of live objects: every concatenation makes Lua collect all of them.
        try expectStopped("""
            local live = {} for i = 1, 4e5 do live[i] = {i} end
            local s = string.rep("x", 6 << 20)
            while true do local c = s .. s end
            """, contains: "timeout after 0.5s", limits: limits)
    }

    /// Work that only looked unbounded: an empty repetition is empty at once.
    @Test func emptyRepetitionIsImmediate() throws {
        let folder = try PluginFolder(["rep.lua": plugin(#"return {#string.rep("", 2e9), #("x"):rep(0), #string.rep("", 2e9, ""), ("ab"):rep(3, ", ")}"#)])
        let start = ContinuousClock.now
        #expect(folder.run("rep").value == .array([.int(0), .int(0), .int(0), .string("ab, ab, ab")]))
        #expect(ContinuousClock.now - start < .seconds(1))
    }

    /// The replaced functions keep Lua's results (a wider comparison against Lua's own functions was
    /// run while writing them).
    @Test func replacedLibraryFunctionsBehaveAsLuas() throws {
        let folder = try PluginFolder(["p.lua": plugin(#"""
            local out = {}
            local function add(...) for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end end
            add(string.find("hello world", "o w"), string.find("hello", "l+"), string.find("a.b", ".", 1, true))
            add(string.match("key = value", "(%w+)%s*=%s*(%w+)"), string.match("THE (quick) fox", "%((%a+)%)"))
            add(string.match("  trim  ", "^%s*(.-)%s*$"), string.find("abc", "()b()"), string.match("f(a(b))c", "%b()"))
            add(string.gsub("hello world", "(%w+)", "<%1>"), string.gsub("abc", "", "-"), string.gsub("x=1, y=2", "(%w+)=(%w+)", "%2=%1"))
            add(string.gsub("$name is $age", "%$(%w+)", {name = "Ann", age = 7}), string.gsub("abc", "%w", string.upper, 2))
            for k, v in string.gmatch("a=1, b=2", "(%w+)=(%w+)") do add(k, v) end
            add(string.find("THE (quick) fox", "%f[%a]%a+", 5), string.match("hello", "(h)(e)"), string.find("", ""))
            add(pcall(string.find, "x", "[a"), pcall(string.gsub, "x", "x", "%2"))
            local t = {5, 3, 9, 1} table.sort(t) add(table.concat(t, " "))
            local m = table.move({1, 2, 3, 4, 5}, 1, 4, 2) add(table.concat(m, " "))
            local big = {} for i = 1, 3000 do big[i] = i end table.move(big, 1, 3000, 1001) add(big[1000], big[1001], big[4000], #big)
            table.move(big, 1001, 4000, 1) add(big[1], big[3000], big[3001])
            add(select(2, pcall(table.sort, nil)), select(2, pcall(table.sort, {}, 1)), select(2, pcall(table.move, {}, 1, 2)))
            add(select(2, pcall(string.find, nil, "x")))
            return table.concat(out, "|")
            """#)])
        let expected = "5|3|2|2|key|quick|trim|2|(a(b))|<hello> <world>|-a-b-c-|1=x, 2=y|2|Ann is 7|ABc|2|a|1|b|2|6|h|1|0|false|false|invalid capture index %2|1 3 5 9|1 1 2 3 4|1000|1|3000|4000|1|3000|2001"
            + "|bad argument #1 to 'table.sort' (table expected, got nil)|bad argument #2 to 'table.sort' (function expected, got number)"
            + "|bad argument #4 to 'table.move' (number expected, got no value)|bad argument #1 to 'string.find' (string expected, got nil)"
        let value = folder.run("p").value
        #expect(value == .string(expected), "\(String(describing: value))")
    }

    /// A string is counted once by the memory limit however often it is referred to; what leaves
    /// the sandbox is measured as the bytes it becomes, while it is produced.
    @Test func outputIsMeasuredAsItsBytes() throws {
        let folder = try PluginFolder([
            "result.lua": plugin("local s = string.rep('x', 1 << 20) local t = {} for i = 1, 100 do t[i] = s end return t"),
            "small.lua": plugin("return {string.rep('x', 1000000)}"),
            "escaped.lua": plugin("return string.rep('\\0', 200000)"),
            "encode.lua": plugin("local s = string.rep('x', 1 << 20) local t = {} for i = 1, 300 do t[i] = s end return #json.encode(t)"),
            "decode.lua": plugin("return json.decode('[' .. string.rep('1,', 5 << 20) .. '1]')"),
            "error.lua": plugin("local s = string.rep('x', 10 << 20) error(s .. s)"),
        ], limits: PluginLimits(timeout: .seconds(10), memoryBytes: 64 << 20))
        let start = ContinuousClock.now
        #expect(folder.run("result").failure?.message.hasPrefix("result is longer than 1 MiB as JSON (reached at result[1]") == true,
                "\(String(describing: folder.run("result").failure?.message))")
        #expect(folder.run("small").value == .array([.string(String(repeating: "x", count: 1_000_000))]))
        #expect(folder.run("escaped").failure?.message.hasPrefix("result is longer than 1 MiB as JSON") == true)
        #expect(folder.run("encode").failure?.message.contains("json.encode: the JSON text would be longer than 8 MiB (reached at value[8])") == true,
                "\(String(describing: folder.run("encode").failure?.message))")
        #expect(folder.run("decode").failure?.message.contains("more than the 8 MiB one call decodes") == true)
        let error = try #require(folder.run("error").failure)
        #expect(error.message.utf8.count <= 4096 && error.message.contains("xxx… [trimmed: 2097")
                && error.message.hasSuffix(" bytes, the first 4046 kept]"),
                "\(error.message.utf8.count): \(error.message.suffix(80))")
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func timeoutReportsWhereCodeWas() throws {
        let folder = try PluginFolder(["spin.lua": "return function()\n  local x = 0\n  while true do x = x + 1 end\nend\n"])
        let failure = try #require(folder.run("spin").failure)
        #expect(failure.message == "timeout after 0.2s")
        #expect(failure.traceback?.contains("spin.lua:3") == true, "\(String(describing: failure.traceback))")
    }

    @Test func timeoutStopsSleep() throws {
        let start = ContinuousClock.now
        try expectFailure("task.sleep(30)", contains: "timeout after 0.2s")
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    /// Memory cases get time to fill 16 MiB even on a loaded machine.
    private let memoryLimits = PluginLimits(timeout: .seconds(10), memoryBytes: 16 << 20)

    @Test func hugeStringHitsMemoryLimit() throws {
        try expectFailure(#"return #string.rep("x", 1e10)"#, contains: "memory limit (16 MiB) exceeded")
        try expectFailure(#"return #("x"):rep(1e10)"#, contains: "memory limit (64 MiB) exceeded", limits: PluginLimits(timeout: .seconds(10)))
        try expectFailure(#"local s = "x" while true do s = s .. s end"#, contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
    }

    @Test func growingTableHitsMemoryLimit() throws {
        try expectFailure("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 65536) .. i end", contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
        try expectFailure("local t = {} for i = 1, 1e9 do t[i] = {} end", contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
    }

    @Test func memoryErrorCannotBeCaught() throws {
        try expectFailure("""
            local ok = pcall(function() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 65536) .. i end end)
            return ok
            """, contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
        // A library function's buffer (string.upper's) gets no collect-and-ask-again: Lua raises
        // "not enough memory" at the first refusal, which must end the task all the same.
        try expectFailure("""
            local half = string.rep("x", 9 << 19) local s = half .. half
            return pcall(string.upper, s)
            """, contains: "memory limit (16 MiB) exceeded", limits: memoryLimits)
    }

    @Test func noProcessFileOrModuleAccess() throws {
        try expectFailure(#"os.execute("touch /tmp/yadtq-pwned")"#, contains: "field 'execute'")
        try expectFailure(#"os.remove("/tmp/x")"#, contains: "field 'remove'")
        try expectFailure(#"return os.getenv("HOME")"#, contains: "field 'getenv'")
        try expectFailure(#"io.open("/etc/passwd")"#, contains: "global 'io'")
        try expectFailure(#"require("os")"#, contains: "global 'require'")
        try expectFailure(#"dofile("/etc/passwd")"#, contains: "global 'dofile'")
        try expectFailure(#"loadfile("/etc/passwd")"#, contains: "global 'loadfile'")
        try expectFailure("debug.sethook(function() end, '', 1)", contains: "global 'debug'")
        try expectFailure("return package.loaded", contains: "global 'package'")
        try expectFailure("collectgarbage('stop')", contains: "global 'collectgarbage'")
    }

    @Test func noBytecode() throws {
        try expectFailure("string.dump(function() end)", contains: "field 'dump'")
        try expectFailure(#"return ("").dump(print)"#, contains: "field 'dump'")
        try expectFailure(#"return getmetatable("").__index.dump"#, contains: "index a boolean value")
        try expectFailure(#"""
            local f, err = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86")
            assert(f == nil, "binary chunk loaded")
            error(err, 0)
            """#, contains: "attempt to load a binary chunk")
        try expectFailure(#"load("return 1", "x", "b")"#, contains: "binary chunks are not allowed")
    }

    @Test func loadRunsTextInTheSandbox() throws {
        let folder = try PluginFolder(["p.lua": plugin(#"""
            local f = assert(load("x = 5; return io == nil and os.execute == nil and x"))
            return {f(), x == nil}
            """#)])
        #expect(folder.run("p").value == .array([.int(5), .bool(true)]))
    }

    @Test func environmentAndLibrariesAreProtected() throws {
        try expectFailure("setmetatable(_G, {__index = function() return 1 end})", contains: "protected metatable")
        try expectFailure("math.floor = nil", contains: "read-only library 'math'")
        try expectFailure("string.upper = function() return 'pwned' end", contains: "read-only library 'string'")
        try expectFailure("rawset(string, 'upper', print)", contains: "global 'rawset'")
        try expectFailure("getmetatable('').__index = {}", contains: "index a boolean value")
        try expectFailure("setmetatable({}, {__gc = function() while true do end end})", contains: "__gc metamethods are not allowed")
        try expectFailure("local _, hidden = pairs(string) hidden.upper = nil", contains: "read-only library 'string'")
        try expectFailure("local next_, hidden = pairs(math) rawget(hidden, 'floor')()", contains: "attempt to call a nil value")
    }

    @Test func librariesCanBeListed() throws {
        let folder = try PluginFolder(["list.lua": plugin("local n = 0 for name, f in pairs(string) do n = n + 1 end return {n > 10, string.dump == nil}")])
        #expect(folder.run("list").value == .array([.bool(true), .bool(true)]))
    }

    @Test func closeHandlersCannotOutliveTheTimeout() throws {
        try expectFailure("""
            local guard <close> = setmetatable({}, {__close = function() while true do end end})
            while true do end
            """, contains: "timeout after 0.2s")
    }

    @Test func tasksLeaveNoStateBehind() throws {
        let folder = try PluginFolder([
            "writer.lua": """
                local calls = 0
                return function(args, task)
                  calls = calls + 1
                  counter = (counter or 0) + 1
                  _G.shared = "from writer"
                  return {calls, counter}
                end
                """,
            "reader.lua": plugin("return {shared == nil, counter == nil, type(string.upper)}"),
        ])
        #expect(folder.run("writer").value == .array([.int(1), .int(1)]))
        #expect(folder.run("writer").value == .array([.int(1), .int(1)]))
        #expect(folder.run("reader").value == .array([.bool(true), .bool(true), .string("function")]))
    }

    @Test func globalsOfFinishedTasksAreFreed() throws {
        // string.rep briefly needs twice the string's size: 6 MiB kept + 12 MiB would not fit in 16.
        let folder = try PluginFolder([
            "hoard.lua": plugin("big = string.rep('x', 6 << 20) return #big"),
            "need.lua": plugin("local s = string.rep('y', 6 << 20) return #s"),
        ], limits: memoryLimits)
        #expect(folder.run("hoard").value == .int(6 << 20))
        #expect(folder.run("need").value == .int(6 << 20))
    }

    @Test func deepRecursionFails() throws {
        try expectFailure("local function f(n) return f(n + 1) + 1 end return f(1)", contains: "stack overflow", limits: PluginLimits(timeout: .seconds(10)))
        try expectFailure("local function f(n) return f(n + 1) + 1 end return f(1)", contains: "exceeded")
        // Its stack reaching the memory limit first, the report still says where the code was.
        let folder = try PluginFolder(["deep.lua": plugin("local function f(n) return f(n + 1) + 1 end return f(1)")], limits: memoryLimits)
        let failure = folder.run("deep").failure
        #expect(failure?.limit == .memory, "\(String(describing: failure))")
        #expect(failure?.traceback?.contains("deep.lua:") == true, "traceback: \(String(describing: failure?.traceback))")
    }

    @Test func errorObjectsBecomeReadable() throws {
        try expectFailure("error({code = 42})", contains: "error object is a table: {code = 42}")
        try expectFailure(#"error({message = "bad input", code = 7})"#, contains: "bad input")
        try expectFailure(#"error(setmetatable({}, {__tostring = function() return "custom error" end}))"#, contains: "custom error")
        try expectFailure("error()", contains: "error() was called without a message")
        try expectFailure("error(42)", contains: "42")
        try expectFailure(#"error("plain", 0)"#, contains: "plain")
    }

    @Test func errorsCarryFileAndLine() throws {
        let folder = try PluginFolder(["bad.lua": "return function()\n  local x = nil\n  return x.field\nend\n"])
        let failure = try #require(folder.run("bad").failure)
        #expect(failure.message == "bad.lua:3: attempt to index a nil value (local 'x')")
        #expect(failure.traceback?.contains("bad.lua:3") == true)
    }
}
