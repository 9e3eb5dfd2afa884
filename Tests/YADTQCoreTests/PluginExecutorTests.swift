import Foundation
import Testing
import YADTQCore

/// The task API (`task`, logs, progress, sleep), limits per plugin, and the bundled plugins.
@Suite("Plugin executor")
struct PluginExecutorTests {
    @Test func taskArgumentDescribesTheTask() throws {
        let folder = try PluginFolder(["who.lua": plugin("return {task.id, task.attempt, task.max_attempts}")])
        #expect(folder.run("who", id: "abc-1", attempt: 2, maxAttempts: 5).value == .array([.string("abc-1"), .int(2), .int(5)]))
    }

    @Test func logsAndProgressAreCollected() throws {
        let folder = try PluginFolder(["chatty.lua": plugin("""
            task.log("start", 1, 2.5, true, nil, json.null, {a = {1, 2}})
            print("printed")
            task.progress(0.25)
            task.progress(0.75)
            return "done"
            """)])
        let outcome = folder.run("chatty")
        #expect(outcome.value == .string("done"))
        #expect(outcome.logs == [#"start 1 2.5 true nil null {"a":[1,2]}"#, "printed"])
        #expect(outcome.progress == 0.75)
        let quiet = try PluginFolder(["quiet.lua": plugin("return 1")]).run("quiet")
        #expect(quiet.logs.isEmpty && quiet.progress == nil)
    }

    @Test func logsAndProgressSurviveFailure() throws {
        let folder = try PluginFolder(["half.lua": plugin(#"task.log("before"); task.progress(0.5); error("broke", 0)"#)])
        let outcome = folder.run("half")
        #expect(outcome.failure?.message == "broke")
        #expect(outcome.logs == ["before"])
        #expect(outcome.progress == 0.5)
    }

    @Test func logIsBounded() throws {
        let folder = try PluginFolder(["flood.lua": plugin("for i = 1, 5000 do task.log(('x'):rep(100)) end return 1")],
                                      limits: PluginLimits(timeout: .seconds(10)))
        let logs = folder.run("flood").logs
        #expect(logs.count == 1001)
        #expect(logs.last == "(4000 more log lines dropped: at most 1000 lines and 256 KiB are kept per attempt)")
    }

    /// A line is built only up to its cap, however long or often repeated its strings and tables
    /// are; the whole log has a cap in bytes as well.
    @Test func logBytesAreBounded() throws {
        let folder = try PluginFolder(["flood.lua": plugin("""
            local s = string.rep("x", 1 << 20)
            local refs = {} for i = 1, 1500 do refs[i] = s end
            task.log(table.unpack(refs))
            task.log(refs)
            for i = 1, 200 do task.log(s) end
            return 1
            """)], limits: PluginLimits(timeout: .seconds(10)))
        let outcome = folder.run("flood")
        #expect(outcome.value == .int(1))
        let logs = outcome.logs
        #expect(logs[0].utf8.count <= 4096)
        // The line was built only up to the log's room, so its length is "at least".
        #expect(logs[0].contains("xxx… [trimmed: at least 4097 bytes, the first "), "\(logs[0].suffix(60))")
        #expect(logs[1].hasPrefix("table: 0x") && logs[1].hasSuffix("(too large to log as JSON)"), "\(logs[1].prefix(80))")
        #expect(logs.dropLast().reduce(0) { $0 + $1.utf8.count } <= 256 << 10)
        #expect(logs.last?.hasSuffix("more log lines dropped: at most 1000 lines and 256 KiB are kept per attempt)") == true, "\(logs.count)")
    }

    @Test func progressMustBeAFraction() throws {
        let folder = try PluginFolder(["p.lua": plugin("task.progress(1.5)")])
        #expect(folder.run("p").failure?.message.contains("task.progress: fraction must be between 0 and 1, got 1.5") == true)
    }

    @Test func sleepWaitsWithoutSpinning() throws {
        let folder = try PluginFolder(["nap.lua": plugin("task.sleep(0.2) return 'rested'")], limits: PluginLimits(timeout: .seconds(5)))
        // The task runs on this thread, so this thread's CPU time is the task's.
        func threadCPUTime() -> Duration {
            var now = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
            return .seconds(now.tv_sec) + .nanoseconds(now.tv_nsec)
        }
        let clock = ContinuousClock()
        let (start, startCPU) = (clock.now, threadCPUTime())
        #expect(folder.run("nap").value == .string("rested"))
        #expect(clock.now - start >= .milliseconds(200))
        #expect(threadCPUTime() - startCPU < .milliseconds(50))
    }

    /// A cancelled task's attempt is stopped wherever it is, busy or asleep, long before its
    /// time limit, and ends as a cancelled failure; the executor's next task is not affected.
    @Test func stopRequestsEndRunningAttempts() throws {
        let folder = try PluginFolder([
            "spin.lua": plugin("while true do end"),
            "nap.lua": plugin("task.sleep(60)"),
            "quick.lua": plugin("task.sleep(0.05) return 'fine'"),
        ])
        let limits = PluginLimits(timeout: .seconds(20))
        let pool = ExecutorPool(count: 3, makeExecutor: { PluginExecutor(registry: folder.registry, limits: limits) })
        defer { pool.close() }
        func job(_ type: String, _ id: String) -> ExecutorPool.Job {
            ExecutorPool.Job(type: type, args: [], context: TaskContext(id: id, attempt: 1, maxAttempts: 3))
        }
        let stopper = Thread {
            while Set(pool.runningTaskIDs) != ["spin-1", "nap-1"] { Thread.sleep(forTimeInterval: 0.01) }
            Thread.sleep(forTimeInterval: 0.1)
            _ = pool.stop(["spin-1", "nap-1", "not-running"])
        }
        let clock = ContinuousClock()
        let start = clock.now
        stopper.start()
        let outcomes = pool.run([job("spin", "spin-1"), job("nap", "nap-1"), job("quick", "quick-1")]).map(\.outcome)
        #expect(clock.now - start < .seconds(2))
        for outcome in outcomes.prefix(2) {
            let failure = try #require(outcome.failure)
            #expect(failure.isCancelled && !failure.isPermanent)
            #expect(failure.message.hasPrefix("cancelled while running"), "\(failure.message)")
        }
        #expect(outcomes[2].value == .string("fine"))
        #expect(pool.stop(["spin-1"]).isEmpty, "nothing runs now")
        // The same executors run the next tasks, with their flags lowered.
        let again = pool.run([job("quick", "spin-1"), job("quick", "nap-1")]).map(\.outcome)
        #expect(again.map(\.value) == [.string("fine"), .string("fine")])
    }

    /// A cancel reaches an attempt stuck in Lua's collector, where no hook runs: the sandbox's
    /// watchdog stops it half a second after it first sees the request.
    @Test func stopRequestReachesTheCollector() throws {
        let folder = try PluginFolder(["chain.lua": try weakKeyChainPlugin(), "quick.lua": plugin("return 'fine'")])
        let limits = PluginLimits(timeout: .seconds(30), memoryBytes: 64 << 20)
        let pool = ExecutorPool(count: 1, makeExecutor: { PluginExecutor(registry: folder.registry, limits: limits) })
        defer { pool.close() }
        let stopper = Thread {
            while pool.runningTaskIDs != ["chain-1"] { Thread.sleep(forTimeInterval: 0.01) }
            Thread.sleep(forTimeInterval: 0.5)  // the chain is made, the collection under way
            _ = pool.stop(["chain-1"])
        }
        let start = ContinuousClock.now
        stopper.start()
        let context = TaskContext(id: "chain-1", attempt: 1, maxAttempts: 3)
        let outcome = pool.run([ExecutorPool.Job(type: "chain", args: [], context: context)])[0].outcome
        let elapsed = ContinuousClock.now - start
        let failure = try #require(outcome.failure)
        #expect(failure.isCancelled, "\(failure.message)")
        #expect(elapsed < .seconds(3), "took \(elapsed) to stop after 0.5 s")
        let next = pool.run([ExecutorPool.Job(type: "quick", args: [], context: TaskContext(id: "q", attempt: 1, maxAttempts: 3))])
        #expect(next[0].outcome.value == .string("fine"))
    }

    @Test func pluginTimeoutOnlyLowersTheLimit() throws {
        let folder = try PluginFolder([
            "short.lua": "return {timeout = 0.1, run = function() while true do end end}",
            "long.lua": "return {timeout = 3600, run = function() while true do end end}",
        ])
        #expect(folder.run("short").failure?.message == "timeout after 0.1s")
        #expect(folder.run("long").failure?.message == "timeout after 0.2s")
    }

    /// A limit hit is the sandbox's report, as a value, and the worker's metrics count that: a
    /// plugin's own error that reads like a limit is a plain failure.
    @Test func limitsAreReportedAsValuesNotReadFromMessages() throws {
        let folder = try PluginFolder([
            "imitates.lua": plugin("error('memory limit (16 MiB) exceeded')"),
            "claims.lua": plugin("error('timeout after 0.2s', 0)"),
            "hoards.lua": plugin("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 65536) .. i end"),
            "spins.lua": plugin("while true do end"),
        ])
        func counted(_ type: String) throws -> (limit: PluginLimit?, outcome: WorkerMetrics.Outcome) {
            let failure = try #require(folder.run(type).failure)
            return (failure.limit, WorkerMetrics.Outcome(kind: .retry, failure: failure))
        }
        #expect(try counted("imitates") == (nil, .retry))
        #expect(try counted("claims") == (nil, .retry))
        #expect(try counted("hoards") == (.memory, .memory))
        #expect(try counted("spins") == (.time, .timeout))
        #expect(WorkerMetrics.Outcome(kind: .failed, failure: folder.run("imitates").failure) == .failure)
        #expect(WorkerMetrics.Outcome(kind: .cancelled, failure: PluginFailure(message: "", isPermanent: false, limit: .time)) == .cancelled)
    }

    @Test func unknownTypeFailsPermanently() throws {
        let folder = try PluginFolder(["add.lua": plugin("return 1")])
        let failure = try #require(folder.run("nope").failure)
        #expect(failure.isPermanent)
        #expect(failure.message.hasPrefix("unknown task type 'nope': there is no nope.lua in "))
        #expect(failure.message.hasSuffix("(known types: add)"))
    }

    @Test func pluginMustReturnARunFunction() throws {
        let folder = try PluginFolder(["nothing.lua": "return 42", "norun.lua": "return {description = 'x'}"])
        #expect(folder.run("nothing").failure?.message.contains("a plugin must return a function or a table with a 'run' function, not number") == true)
        #expect(folder.run("norun").failure?.message.contains("has no 'run' function") == true)
        #expect(folder.run("norun").failure?.isPermanent == true)
    }

    @Test func bundledPlugins() throws {
        let registry = PluginRegistry(directory: bundledPluginsPath)
        let expected: Set = ["add", "sub", "mul", "div", "wordcount", "sleep", "fib", "concat", "fail", "echo"]
        #expect(expected.isSubset(of: Set(registry.plugins.map(\.type))))
        for info in registry.plugins {
            #expect(info.isLoaded, "\(info.file): \(String(describing: info.loadError))")
            if expected.contains(info.type) { #expect(info.description?.isEmpty == false, "\(info.file) has no description") }
        }
        let executor = PluginExecutor(registry: registry, limits: PluginLimits(timeout: .seconds(10)))
        func run(_ type: String, _ args: JSONValue...) -> PluginOutcome {
            executor.execute(type: type, args: args, context: TaskContext(id: "t", attempt: 1, maxAttempts: 1))
        }
        #expect(run("add", .int(2), .int(3)).value == .int(5))
        #expect(run("add", .double(0.5), .int(1)).value == .double(1.5))
        #expect(run("sub", .int(2), .int(3)).value == .int(-1))
        #expect(run("mul", .int(6), .int(7)).value == .int(42))
        #expect(run("div", .int(7), .int(2)).value == .double(3.5))
        #expect(run("div", .int(1), .int(0)).failure?.message == "division by zero")
        #expect(run("fib", .int(0)).value == .int(0))
        #expect(run("fib", .int(10)).value == .int(55))
        #expect(run("fib", .int(92)).value == .int(7_540_113_804_746_346_429))
        #expect(run("fib", .int(93)).failure != nil)
        #expect(run("concat", .string("a"), .string("b"), .int(1)).value == .string("ab1"))
        #expect(run("concat").value == .string(""))
        #expect(run("wordcount", .string("the cat and the hat")).value
            == .object(["the": .int(2), "cat": .int(1), "and": .int(1), "hat": .int(1)]))
        #expect(run("wordcount", .string("one two three"), .string("total")).value == .int(3))
        #expect(run("wordcount", .string("one two three")).logs == ["counted 3 words"])
        #expect(run("fail").failure?.message == "this task always fails")
        #expect(run("echo", .int(1), .null, .string("x")).value == .array([.int(1), .null, .string("x")]))
        let sleep = run("sleep", .double(0.05))
        #expect(sleep.value == .double(0.05))
        #expect(sleep.progress == 1.0)
        #expect(run("add", .string("x"), .int(1)).failure?.message == "add.lua:6: attempt to add a 'string' with a 'number'")
    }
}
