import Foundation
import Testing
import YADTQCore

/// A `yadtq-monitor` process, its output in files (a pipe could fill up and block it),
/// plus Redis read with `redis-cli`, so the tests do not check the monitor with its own code.
private struct MonitorProbe {
    let stack: IntegrationStack

    /// Starts `yadtq-monitor` with `arguments`; stdout and stderr go to artifact files.
    func startMonitor(_ arguments: [String]) throws -> (process: Process, stdout: URL, stderr: URL) {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".test-artifacts")
        let stdout = directory.appendingPathComponent("\(stack.settings.namespace)-monitor-\(UUID().uuidString.prefix(4)).out")
        let stderr = stdout.deletingPathExtension().appendingPathExtension("err")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: stack.binDirectory + "/yadtq-monitor")
        process.arguments = ["--topic", stack.topic] + arguments
        process.environment = stack.environment
        process.standardOutput = try IntegrationStack.artifact(stdout.lastPathComponent)
        process.standardError = try IntegrationStack.artifact(stderr.lastPathComponent)
        try process.run()
        return (process, stdout, stderr)
    }

    /// `yadtq-monitor --once --json`, parsed.
    func snapshot(_ extra: [String] = []) throws -> JSONValue {
        let monitor = try startMonitor(["--once", "--json"] + extra)
        #expect(IntegrationStack.waitForExit(monitor.process, timeout: .seconds(20)) == 0)
        let text = try String(contentsOf: monitor.stdout, encoding: .utf8)
        #expect(text.split(separator: "\n").count == 1, "--once --json prints exactly one line: \(text)")
        return try JSONValue(parsing: text)
    }

    /// One `redis-cli --raw` command against the test's Redis; the reply's lines.
    func redis(_ arguments: String...) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-cli", "-u", stack.settings.redis.urlWithPassword, "--raw"] + arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .dropLast().map(String.init)
    }

    /// A hash of the test's namespace as field -> value.
    func hash(_ suffix: String) throws -> [String: String] {
        let lines = try redis("HGETALL", stack.settings.keyPrefix + suffix)
        return Dictionary(
            stride(from: 0, to: lines.count - 1, by: 2).map { (lines[$0], lines[$0 + 1]) },
            uniquingKeysWith: { _, last in last })
    }

    func verdict(of worker: String) throws -> String? { try hash("worker_status")[worker] }

    /// Polls every 100 ms until `condition` holds; returns how long it took, or `nil` on timeout.
    @discardableResult
    func wait(for what: String, timeout: Duration, _ condition: () throws -> Bool) throws -> Duration? {
        let clock = ContinuousClock()
        let start = clock.now
        while clock.now - start < timeout {
            if try condition() { return clock.now - start }
            Thread.sleep(forTimeInterval: 0.1)
        }
        Issue.record("timed out after \(timeout) waiting for \(what)")
        return nil
    }
}

extension RedisURL {
    /// The URL with its password, for `redis-cli -u`.
    fileprivate var urlWithPassword: String {
        "redis://\(password.map { ":\($0)@" } ?? "")\(host):\(port)/\(database)"
    }
}

/// The processes a test started, to end every one of them, even a frozen one, in a
/// `defer` (not a `deinit`: ARC may release an object before its scope ends).
private final class ProcessReaper {
    private var processes: [Process] = []

    func watch(_ process: Process) -> Process {
        processes.append(process)
        return process
    }

    func killAll() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Heartbeats and `yadtq-monitor` with real workers: kills, freezes, blocked tasks,
/// concurrent writers and the JSON snapshot checked against Redis.
@Suite("Monitor", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct MonitorIntegrationTests {
    static let fastHeartbeat = ["--heartbeat-interval", "1s"]
    static let fastMonitor = ["--interval", "1s", "--dead-after", "3s"]

    /// A fresh stack with the topic created, so workers start beating at once.
    private func stack(extraPlugins: [String: String] = [:]) throws -> (IntegrationStack, MonitorProbe) {
        let stack = try IntegrationStack(extraPlugins: extraPlugins)
        let created = try stack.run(input: "", arguments: ["--partitions", "2"])
        #expect(created.status == 0, "\(created.stderr)")
        return (stack, MonitorProbe(stack: stack))
    }

    @Test("the table and --json count every status, CANCELLED included, as the counters in Redis hold them")
    func countsEveryStatus() throws {
        let (stack, probe) = try stack()
        let published = try stack.run(input: "add 1 2\nadd 3 4\n" + #"{"id": "dropped", "type": "add", "args": [5, 6]}"# + "\n")
        #expect(published.status == 0, "\(published.stderr)")
        #expect(try stack.ctl(["cancel", "dropped"]).status == 0)
        let counts = try probe.hash("counts")
        #expect(counts["CANCELLED"] == "1" && counts["QUEUED"] == "2", "\(counts)")
        let queue = try #require(try probe.snapshot()["queue"]?.objectValue)
        #expect(Set(queue.keys) == Set(TaskStatus.allCases.map(\.rawValue) + ["total"]), "\(queue)")
        for status in TaskStatus.allCases {
            #expect(queue[status.rawValue] == .int(Int64(counts[status.rawValue] ?? "0") ?? -1), "\(status)")
        }
        #expect(queue["total"] == 3)
        let table = try probe.startMonitor(["--once"])
        #expect(IntegrationStack.waitForExit(table.process, timeout: .seconds(20)) == 0)
        let text = try String(contentsOf: table.stdout, encoding: .utf8)
        #expect(text.contains("QUEUED 2 · ") && text.contains(" · CANCELLED 1 · total 3 · "), "\(text)")
    }

    @Test("a full Redis: the monitor still shows the fleet, says its verdicts were not stored and that Redis is full; so does yadtq-ctl stats")
    func fullRedis() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        let worker = reaper.watch(try stack.startWorker("w1", arguments: Self.fastHeartbeat))
        try probe.wait(for: "w1's heartbeat", timeout: .seconds(30)) { try probe.hash("all_heartbeats")["w1"] != nil }
        _ = try stack.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "1"])
        defer { _ = try? stack.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "0"]) }
        let snapshot = try probe.snapshot()
        #expect(snapshot["workers"]?[0]?["name"] == "w1", "\(snapshot)")
        let problems = snapshot["problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(problems.contains { $0.contains("verdicts not stored") && $0.contains("Redis is full") }, "\(problems)")
        #expect(problems.contains { $0.contains("is full and refuses writes") && $0.contains("of 0.0 MiB maxmemory (full)") }, "\(problems)")
        #expect(try probe.verdict(of: "w1") == nil)
        let stats = try stack.ctl(["stats"])
        #expect(stats.status == 0 && stats.stderr.contains("is full and refuses writes"), "\(stats.stderr)")
        let memory = try JSONValue(parsing: try stack.ctl(["stats", "--json"]).stdout)["redis_memory"]?.arrayValue ?? []
        #expect(memory.count == stack.settings.redis.nodes.count || stack.settings.redis.isCluster, "\(memory)")
        #expect(!memory.isEmpty && memory.allSatisfy { $0["maxmemory_bytes"] == 1 && ($0["used_bytes"]?.intValue ?? 0) > 1 }, "\(memory)")
        _ = try stack.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "0"])
        #expect(try probe.snapshot()["problems"] == [])
        #expect(try probe.verdict(of: "w1") == "ALIVE")
        let mended = try stack.ctl(["stats"])
        #expect(mended.stderr.isEmpty && mended.stdout.contains("(no maxmemory)"), "\(mended.stdout) \(mended.stderr)")
        kill(worker.processIdentifier, SIGTERM)
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(30)) == 0)
    }

    @Test("a worker its group has not assigned partitions yet is ALIVE, waiting, and says for how long, until it has them")
    func waitingForGroup() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        // The local broker holds a group's first join for about half the session timeout: 15 s
        // here, so the wait outlasts several beats and a monitor's look.
        let worker = reaper.watch(
            try stack.startWorker("w1", arguments: Self.fastHeartbeat, environment: ["YADTQ_KAFKA_SESSION_TIMEOUT_MS": "30000"]))
        func beat() -> Heartbeat? { try? Heartbeat(parsing: probe.hash("all_heartbeats")["w1"] ?? "") }
        let note = "waiting for group \(stack.settings.group) to assign partitions (for "
        var waiting: Heartbeat?
        try probe.wait(for: "w1 waiting for its group", timeout: .seconds(30)) {
            waiting = beat()
            return waiting?.state == .waiting && waiting?.note?.hasPrefix(note) == true
        }
        #expect(waiting?.partitions == [], "\(String(describing: waiting))")
        let snapshot = try probe.snapshot()
        let shown = snapshot["workers"]?[0]
        #expect(shown?["verdict"] == "ALIVE" && shown?["reason"]?.stringValue?.hasPrefix(note) == true, "\(snapshot)")
        try probe.wait(for: "w1 consuming both partitions", timeout: .seconds(60)) {
            let assigned = beat()
            return assigned?.state == .idle && assigned?.note == nil && assigned?.partitions == [0, 1]
        }
        kill(worker.processIdentifier, SIGTERM)
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(30)) == 0)
    }

    @Test("a worker killed with -9 is DEAD within dead-after + interval, and its task is orphaned")
    func killedWorkerIsDead() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        let worker = reaper.watch(try stack.startWorker("w1", arguments: Self.fastHeartbeat))
        let monitor = reaper.watch(try probe.startMonitor(Self.fastMonitor).process)
        let published = try stack.run(input: #"{"id": "long", "type": "sleep", "args": [20]}"# + "\n")
        #expect(published.status == 0, "\(published.stderr)")
        try probe.wait(for: "w1 ALIVE and busy", timeout: .seconds(30)) {
            try probe.verdict(of: "w1") == "ALIVE"
                && (try? Heartbeat(parsing: probe.hash("all_heartbeats")["w1"] ?? ""))?.currentTask == "long"
        }
        kill(worker.processIdentifier, SIGKILL)
        // The last beat is at most one heartbeat interval older than the kill, so DEAD
        // comes within dead-after + the monitor's interval; 1 s more for polling and a busy machine.
        let elapsed = try probe.wait(for: "w1 DEAD", timeout: .seconds(10)) { try probe.verdict(of: "w1") == "DEAD" }
        if let elapsed {
            print("kill -9 -> DEAD after \(elapsed) (heartbeat 1s, dead-after 3s, interval 1s)")
            #expect(elapsed <= .seconds(5))
        }
        let snapshot = try probe.snapshot(Self.fastMonitor)
        #expect(snapshot["orphaned"] == [["id": "long", "worker": "w1"]])
        #expect(snapshot["workers"]?[0]?["verdict"] == "DEAD")
        #expect(monitor.isRunning, "the monitor keeps watching: no end marker was published")
    }

    @Test("a worker restarted under its name: what the process before it began is orphaned, what it began itself is not")
    func restartedWorkerLeavesOrphans() throws {
        let (stack, probe) = try stack()
        let store = stack.store
        let now = currentEpochMilliseconds()
        let tasks = ["before", "after"].map {
            TaskMessage(id: $0, type: "add", args: [1, 2], maxAttempts: 3, queuedAt: now - 60_000)
        }
        #expect(try store.queue(tasks) == [.queued, .queued])
        #expect(try store.begin([tasks[0]], partitions: [0], worker: "w1", at: now - 30_000) == [.run(attempt: 1)])
        #expect(try store.begin([tasks[1]], partitions: [1], worker: "w1", at: now - 5_000) == [.run(attempt: 1)])
        // The w1 beating now started 10 s ago, after its predecessor began "before".
        try store.writeHeartbeat(
            worker: "w1",
            Heartbeat(
                lastHeartbeat: now, state: .busy, currentTask: "after", taskStartedAt: now - 5_000, pid: 2, host: "box",
                startedAt: now - 10_000, intervalMilliseconds: 5_000))
        let snapshot = try probe.snapshot()
        #expect(snapshot["workers"]?[0]?["verdict"] == "ALIVE", "\(snapshot)")
        #expect(snapshot["orphaned"] == [["id": "before", "worker": "w1"]], "\(snapshot)")
        #expect(snapshot["orphaned_count"] == 1)
    }

    @Test("Redis stamps each heartbeat with its own clock, and the monitor judges a worker on a host whose clock is two minutes behind ALIVE")
    func hostClockBehind() throws {
        let (stack, probe) = try stack()
        let behind = currentEpochMilliseconds() - 120_000
        // What a worker on that host writes: its clock's times.
        try stack.store.writeHeartbeat(
            worker: "w-behind",
            Heartbeat(
                lastHeartbeat: behind, state: .busy, currentTask: "t1", taskStartedAt: behind - 2_000, pid: 7, host: "late",
                startedAt: behind - 60_000, timeLimitMilliseconds: 30_000, intervalMilliseconds: 5_000))
        let redisTime = try probe.redis("TIME")
        let redisNow = try #require(Int64(redisTime[0])) * 1000 + (try #require(Int64(redisTime[1]))) / 1000
        let stored = try Heartbeat(parsing: try #require(try probe.hash("all_heartbeats")["w-behind"]))
        let receivedAt = try #require(stored.receivedAt, "Redis stamped the entry")
        #expect(abs(redisNow - receivedAt) < 5_000, "received_at \(receivedAt) is Redis's time, about \(redisNow)")
        #expect(stored.lastHeartbeat == behind, "the worker's own time stays as it wrote it")
        let worker = try #require(try probe.snapshot(["--dead-after", "10s"])["workers"]?[0])
        #expect(worker["verdict"] == "ALIVE", "\(worker)")
        #expect((worker["heartbeat_age_ms"]?.intValue ?? .max) < 10_000, "\(worker)")
        #expect((worker["task_running_ms"]?.intValue ?? .max) < 12_000, "its task ran 2 s before the beat, not 2 minutes: \(worker)")
        #expect(try probe.verdict(of: "w-behind") == "ALIVE")
    }

    @Test("a worker silent for over --forget-after loses its heartbeat, verdict and plugin list; a live one keeps them and writes its list again")
    func silentWorkerIsForgotten() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        let gone = reaper.watch(try stack.startWorker("gone", arguments: Self.fastHeartbeat))
        _ = reaper.watch(try stack.startWorker("live", arguments: Self.fastHeartbeat))
        let judge = ["--dead-after", "1s", "--forget-after", "3s"]
        try probe.wait(for: "both workers beating, with their plugin lists", timeout: .seconds(30)) {
            try probe.hash("all_heartbeats").keys.sorted() == ["gone", "live"]
                && probe.hash("plugins").keys.sorted() == ["gone", "live"]
        }
        _ = try probe.snapshot(judge)
        #expect(try probe.hash("worker_status").keys.sorted() == ["gone", "live"])
        gone.terminate()
        #expect(IntegrationStack.waitForExit(gone, timeout: .seconds(30)) == 0)
        _ = try probe.snapshot(judge)
        #expect(try probe.hash("all_heartbeats").keys.sorted() == ["gone", "live"], "stopped, not yet forgotten")
        #expect(try probe.verdict(of: "gone") == "DEAD")
        Thread.sleep(forTimeInterval: 4)
        let snapshot = try probe.snapshot(judge)
        #expect(snapshot["workers"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["live"])
        for hash in ["all_heartbeats", "worker_status", "plugins"] {
            #expect(try probe.hash(hash).keys.sorted() == ["live"], "\(hash)")
        }
        // A live worker's list comes back by itself (it is written every 10 s), as it does
        // after a write that failed or a monitor that forgot the worker while it was cut off.
        #expect(try probe.redis("HDEL", stack.settings.keyPrefix + "plugins", "live") == ["1"])
        try probe.wait(for: "the live worker's plugin list written again", timeout: .seconds(15)) {
            try probe.hash("plugins").keys.sorted() == ["live"]
        }
    }

    @Test("a worker frozen with -STOP is DEAD, and ALIVE again after -CONT")
    func frozenWorkerIsDeadUntilContinued() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        let worker = reaper.watch(try stack.startWorker("w1", arguments: Self.fastHeartbeat))
        let monitor = try probe.startMonitor(Self.fastMonitor)
        _ = reaper.watch(monitor.process)
        try probe.wait(for: "w1 ALIVE", timeout: .seconds(30)) { try probe.verdict(of: "w1") == "ALIVE" }
        kill(worker.processIdentifier, SIGSTOP)
        try probe.wait(for: "frozen w1 DEAD", timeout: .seconds(10)) { try probe.verdict(of: "w1") == "DEAD" }
        kill(worker.processIdentifier, SIGCONT)
        try probe.wait(for: "continued w1 ALIVE", timeout: .seconds(5)) { try probe.verdict(of: "w1") == "ALIVE" }
        // The running monitor sees the new beat at its next poll, up to one interval after the probe did.
        try probe.wait(for: "the monitor to log w1 DEAD -> ALIVE", timeout: .seconds(5)) {
            try String(contentsOf: monitor.stderr, encoding: .utf8).contains(" w1 DEAD -> ALIVE")
        }
        let log = try String(contentsOf: monitor.stderr, encoding: .utf8)
        #expect(log.contains(" w1 ALIVE -> DEAD: no heartbeat for "), "\(log)")
        #expect(
            log.split(separator: "\n").allSatisfy { $0.first?.isNumber == true },
            "every change line starts with its timestamp: \(log)")
    }

    @Test("a long sleep task past --stuck-after is STUCK, and ALIVE again when it ends")
    func longSleepIsStuck() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        _ = reaper.watch(try stack.startWorker("w1", arguments: Self.fastHeartbeat))
        _ = reaper.watch(try probe.startMonitor(Self.fastMonitor + ["--stuck-after", "2s"]).process)
        _ = try stack.run(input: "sleep 6\n")
        try probe.wait(for: "w1 STUCK", timeout: .seconds(30)) { try probe.verdict(of: "w1") == "STUCK" }
        let snapshot = try probe.snapshot(Self.fastMonitor + ["--stuck-after", "2s"])
        let reason = snapshot["workers"]?[0]?["reason"]?.stringValue ?? ""
        #expect(reason.contains("(stuck after 2s)"), "\(reason)")
        try probe.wait(for: "w1 ALIVE after the task", timeout: .seconds(15)) { try probe.verdict(of: "w1") == "ALIVE" }
    }

    @Test("a pattern match that would block in C for minutes ends at the time limit; the worker stays ALIVE, never STUCK")
    func pathologicalMatchEndsAtTheLimit() throws {
        // Its cost grows as C(n + k, k): Lua's own matcher would block the task thread for
        // minutes inside one C call. The sandbox's matcher checks the deadline as it goes.
        let blocking = """
            return function(args)
              return string.find(string.rep("a", 60), string.rep(".-", 10) .. "b")
            end
            """
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack(extraPlugins: ["blocking": blocking])
        _ = reaper.watch(try stack.startWorker("w1", arguments: Self.fastHeartbeat + ["--timeout", "1s"]))
        _ = reaper.watch(try probe.startMonitor(Self.fastMonitor).process)
        let started = ContinuousClock.now
        let run = try stack.run(input: #"{"id": "blocking", "type": "blocking", "args": [], "max_attempts": 1}"# + "\n", arguments: ["--wait"])
        #expect(ContinuousClock.now - started < .seconds(15), "\(run.stderr)")
        let record = try #require(try stack.records(["blocking"]).first ?? nil)
        #expect(record.status == .failed)
        #expect(record.error?.contains("timeout") == true, "\(record.error ?? "")")
        try probe.wait(for: "w1 ALIVE", timeout: .seconds(15)) { try probe.verdict(of: "w1") == "ALIVE" }
    }

    @Test("two workers and a monitor write the same hashes without losing each other's fields; the monitor exits on end")
    func concurrentWritersKeepEveryField() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        let workers = try ["w1", "w2"].map { reaper.watch(try stack.startWorker($0, arguments: Self.fastHeartbeat)) }
        let monitor = reaper.watch(
            try probe.startMonitor(["--interval", "200ms", "--dead-after", "3s"]).process)
        try probe.wait(for: "both workers judged", timeout: .seconds(30)) {
            try probe.hash("worker_status").keys.sorted() == ["w1", "w2"]
        }
        // 300 tasks of 20 ms on two workers: a few seconds of beats, verdicts and task writes at once.
        let tasks = (0..<300).map { #"{"id": "t\#($0)", "type": "sleep", "args": [0.02]}"# }
        let published = try stack.run(input: (tasks + ["end"]).joined(separator: "\n") + "\n")
        #expect(published.status == 0, "\(published.stderr)")
        let required: Set = [
            "last_heartbeat", "state", "current_task", "task_started_at", "processed", "failed", "partitions", "pid",
            "host", "started_at",
        ]
        var samples = 0
        while workers.contains(where: \.isRunning) {
            let heartbeats = try probe.hash("all_heartbeats")
            let verdicts = try probe.hash("worker_status")
            #expect(heartbeats.keys.sorted() == ["w1", "w2"])
            #expect(verdicts.keys.sorted() == ["w1", "w2"])
            for (name, text) in heartbeats {
                let document = try JSONValue(parsing: text)
                let fields = Set(document.objectValue?.keys.map { $0 } ?? [])
                #expect(fields.isSuperset(of: required), "\(name): \(text)")
            }
            samples += 1
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(samples > 10)
        for worker in workers { #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0) }
        #expect(IntegrationStack.waitForExit(monitor, timeout: .seconds(10)) == 0, "end drained, workers stopped")
        let finals = try probe.hash("all_heartbeats").mapValues { try Heartbeat(parsing: $0) }
        #expect(finals.values.allSatisfy { $0.state == .stopped })
        #expect(finals.values.map(\.processed).reduce(0, +) == 300)
        #expect(try probe.hash("worker_status") == ["w1": "DEAD", "w2": "DEAD"])
    }

    @Test("--once --json parses and matches what Redis holds")
    func jsonSnapshotMatchesRedis() throws {
        let reaper = ProcessReaper()
        defer { reaper.killAll() }
        let (stack, probe) = try stack()
        let worker = reaper.watch(try stack.startWorker("w1", arguments: Self.fastHeartbeat))
        let input = (0..<20).map { "add \($0) 1" } + [#"{"id": "bad", "type": "div", "args": [1, 0], "max_attempts": 1}"#, "end"]
        _ = try stack.run(input: input.joined(separator: "\n") + "\n", arguments: ["--wait"])
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0)
        let snapshot = try probe.snapshot()
        let prefix = stack.settings.keyPrefix
        for status in TaskStatus.allCases {
            let count = try probe.redis("HGET", prefix + "counts", status.rawValue).first.flatMap { Int64($0) } ?? 0
            #expect(snapshot["queue"]?[status.rawValue]?.intValue == count, "\(status)")
        }
        #expect(snapshot["queue"]?["SUCCESS"] == 20)
        #expect(snapshot["queue"]?["FAILED"] == 1)
        #expect(snapshot["namespace"]?.stringValue == stack.settings.namespace)
        let stored = try JSONValue(parsing: try #require(try probe.hash("all_heartbeats")["w1"]))
        let reported = try #require(snapshot["workers"]?[0]?.objectValue)
        for (field, value) in try #require(stored.objectValue) {
            #expect(reported[field] == value, "\(field)")
        }
        #expect(reported["name"] == "w1")
        #expect(reported["verdict"]?.stringValue == (try probe.verdict(of: "w1")))
        #expect(reported["verdict"] == "DEAD")
        #expect(reported["reason"] == "stopped")
        // The verdicts expire unless a monitor refreshes them (here: 15 s, the least, after a
        // refresh every 5 s), so a stopped monitor's do not stand for ever.
        let verdictsLeft = try probe.redis("PTTL", prefix + "worker_status").first.flatMap { Int($0) } ?? -1
        #expect(verdictsLeft > 0 && verdictsLeft <= 15_000, "PTTL \(verdictsLeft)")
        #expect(snapshot["end_of_stream"]?["complete"] == true)
        // A topic's end state goes a week after its latest marker, as its drained partitions do.
        let lifetime = try probe.redis("TTL", prefix + "end:" + stack.topic).first.flatMap { Int($0) } ?? -1
        #expect(lifetime > 6 * 24 * 3600 && lifetime <= 7 * 24 * 3600, "TTL \(lifetime)")
        #expect(snapshot["orphaned"] == [])
    }
}
