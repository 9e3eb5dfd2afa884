import Foundation
import Testing
import YADTQCore

/// The scenarios of `scripts/chaos`, smaller: killed and frozen workers, a Redis
/// restart, a frozen broker, poison messages, bad producer input and a task longer
/// than max.poll.interval.ms. Every task must end terminal with the right result,
/// attempts within max_attempts, and no terminal status rewritten. Timings are never
/// asserted. Redis restarts and broker stalls use a private stack, so the tests running
/// beside them are not disturbed.
@Suite("Chaos", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct ChaosTests {
    private func createTopic(_ stack: ChaosStack, partitions: Int) throws {
        let created = try stack.base.run(input: "", arguments: ["--partitions", String(partitions)])
        #expect(created.status == 0, "\(created.stderr)")
    }

    /// Two workers and a producer streaming `count` tasks over 4 s, returned once a fifth of
    /// them are SUCCESS: the moment to inject a fault.
    private func streamedRun(_ stack: ChaosStack, prefix: String, count: Int) throws
        -> (ids: [String], workers: [Process], producer: Process)
    {
        let (lines, ids) = ChaosStack.stampTasks(count, prefix: prefix, nap: 0.002)
        try createTopic(stack, partitions: 4)
        let workers = try ["w1", "w2"].map { try stack.base.startWorker($0, arguments: ["--batch-size", "50"]) }
        let producer = try stack.streamRun(lines, over: 4)
        let store = stack.store
        try ChaosStack.waitUntil(.seconds(60)) { (try store.counts()[.success] ?? 0) >= count / 5 }
        return (ids, workers, producer)
    }

    @Test("kill -9 of a worker three times mid-run, restarted each time: nothing lost, nothing rewritten")
    func workerKills() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        // Slow enough that a restarted victim rejoins (a rebalance: seconds) well before the end.
        let count = 1200
        let (lines, ids) = ChaosStack.stampTasks(count, prefix: "kill", nap: 0.05)
        try createTopic(stack, partitions: 6)
        let arguments = ["--batch-size", "20"]
        let stable = try ["w1", "w2"].map { try stack.base.startWorker($0, arguments: arguments) }
        var victimStarted = currentEpochMilliseconds()
        var victim = try stack.base.startWorker("victim", arguments: arguments)
        let run = try stack.base.run(input: lines.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let store = stack.store
        var snapshots: [[String: ChaosStack.Terminal]] = []
        for round in 1...3 {
            #expect(try ChaosStack.waitUntil(.seconds(60)) { (try store.counts()[.success] ?? 0) >= count * round / 5 })
            // The kill must hit a worker that holds partitions: this process's heartbeat says so.
            #expect(
                try ChaosStack.waitUntil(.seconds(60)) {
                    let beat = try store.heartbeats(of: ["victim"]).heartbeats["victim"]
                    return (beat?.startedAt ?? 0) >= victimStarted - 1_000 && beat?.partitions.isEmpty == false
                }, "round \(round): the victim holds partitions")
            snapshots.append(try stack.terminalSnapshot(ids))
            kill(victim.processIdentifier, SIGKILL)
            victim.waitUntilExit()
            Thread.sleep(forTimeInterval: 0.3)
            victimStarted = currentEpochMilliseconds()
            victim = try stack.base.startWorker("victim", arguments: arguments)
        }
        let records = try stack.base.waitForTerminal(ids, timeout: .seconds(120))
        try stack.verifyStamped(ids, records: records, snapshots: snapshots)
        #expect(records.contains { $0?.worker == "victim" }, "the victim ran tasks between its kills")
        #expect(snapshots.last!.count < count, "the last kill must land before the end of the run")
        #expect(ChaosStack.stop(stable + [victim]) == [0, 0, 0])
    }

    @Test("a worker cut off from Redis gives its partitions up past its outage limit, rejoins when Redis is back, and stops on SIGTERM during an outage")
    func redisCut() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        let count = 600
        let (lines, ids) = ChaosStack.stampTasks(count, prefix: "cut", nap: 0.02)
        try createTopic(stack, partitions: 4)
        let redisPort = stack.settings.redis.port
        let proxyPort = try ChaosStack.shell(#"source "$0/scripts/lib.sh"; free_port"#, [IntegrationStack.repository.path])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        func startProxy() throws -> Process {
            let proxy = Process()
            proxy.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            proxy.arguments = [
                "python3", IntegrationStack.repository.appendingPathComponent("scripts/tcp_proxy.py").path, proxyPort,
                stack.settings.redis.host, String(redisPort),
            ]
            let ready = Pipe()
            proxy.standardOutput = ready
            try proxy.run()
            _ = ready.fileHandleForReading.availableData  // "ready"
            return proxy
        }
        var proxy = try startProxy()
        var url = stack.base.environment["YADTQ_REDIS"]!
        url = url.replacingOccurrences(of: ":\(redisPort)", with: ":\(proxyPort)")
        let arguments = ["--batch-size", "10", "--redis-outage-limit", "3s"]
        let cut = try stack.base.startWorker("cut", arguments: arguments, environment: ["YADTQ_REDIS": url])
        let other = try stack.base.startWorker("other", arguments: arguments)
        #expect(ChaosStack.waitUntil(.seconds(60)) { stack.base.workerLog("cut").contains("assigned partitions") })
        let run = try stack.base.run(input: lines.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let store = stack.store
        try ChaosStack.waitUntil(.seconds(60)) { (try store.counts()[.success] ?? 0) >= count / 5 }
        kill(proxy.processIdentifier, SIGKILL)  // the cut: every connection closes at once
        proxy.waitUntilExit()
        let records = try stack.base.waitForTerminal(ids, timeout: .seconds(120))
        try stack.verifyStamped(ids, records: records)
        #expect(
            ChaosStack.waitUntil(.seconds(30)) { stack.base.workerLog("cut").contains("giving partitions") },
            "the cut-off worker gave its partitions up")
        // Redis is back: the worker joins again and takes partitions.
        let assigned = stack.base.workerLog("cut").components(separatedBy: "assigned partitions").count
        proxy = try startProxy()
        #expect(ChaosStack.waitUntil(.seconds(60)) {
            stack.base.workerLog("cut").components(separatedBy: "assigned partitions").count > assigned
        }, "the worker took partitions again once Redis answered")
        // A second outage, with SIGTERM in the middle of it.
        kill(proxy.processIdentifier, SIGKILL)  // the cut: every connection closes at once
        proxy.waitUntilExit()
        Thread.sleep(forTimeInterval: 1)
        #expect(ChaosStack.stop([cut], timeout: .seconds(15)) == [0], "SIGTERM stops a worker during a Redis outage")
        #expect(ChaosStack.stop([other]) == [0])
    }

    @Test("Redis full: pruning still frees room, workers keep their partitions while they wait, and every task ends SUCCESS once there is room")
    func redisFull() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 2)
        let arguments = [
            "--batch-size", "10", "--redis-outage-limit", "2s", "--keep-succeeded", "8s", "--heartbeat-interval", "1s",
        ]
        let workers = try ["w1", "w2"].map { try stack.base.startWorker($0, arguments: arguments) }
        let (kept, keptIDs) = ChaosStack.stampTasks(30, prefix: "kept", nap: 0)
        #expect(try stack.base.run(input: kept.joined(separator: "\n") + "\n").status == 0)
        try stack.verifyStamped(keptIDs, records: try stack.base.waitForTerminal(keptIDs, timeout: .seconds(60)))
        let store = stack.store
        _ = try stack.base.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "1"])
        defer { _ = try? stack.base.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "0"]) }
        #expect((try store.counts()[.success] ?? 0) > 0, "some tasks are still kept once Redis is full, for the pruning below")

        // Nothing is written any more, but the workers' heartbeats still delete what has expired.
        #expect(
            try ChaosStack.waitUntil(.seconds(30)) { (try store.counts()[.success] ?? 0) == 0 },
            "expired tasks are pruned while Redis refuses writes")

        // Tasks that reach the workers now cannot be begun: Redis refuses every worker alike.
        let heldIDs = (1...20).map { "held-\($0)" }
        let held = heldIDs.map { Array(#"{"id": "\#($0)", "type": "add", "args": [2, 3]}"#.utf8) }
        _ = try stack.produceRaw(Array(held[..<10]), partition: 0)
        _ = try stack.produceRaw(Array(held[10...]), partition: 1)
        let logs = { ["w1", "w2"].map { stack.base.workerLog($0) }.joined() }
        #expect(ChaosStack.waitUntil(.seconds(30)) { logs().contains("keeps its partitions") }, "\(logs().suffix(2000))")
        Thread.sleep(forTimeInterval: 6)  // three outage limits
        #expect(!logs().contains("giving partitions"), "\(logs().suffix(2000))")
        #expect(try store.statuses(of: heldIDs).allSatisfy { $0 == nil }, "nothing was written meanwhile")

        _ = try stack.base.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "0"])
        let records = try stack.base.waitForTerminal(heldIDs, timeout: .seconds(60))
        for (id, record) in zip(heldIDs, records) {
            #expect(record?.status == .success && record?.result == .int(5), "\(id): \(String(describing: record))")
            #expect(record?.attempts == 1, "\(id): the refused begin counted no attempt")
        }
        #expect(logs().contains("Redis answers again"))
        #expect(ChaosStack.stop(workers) == [0, 0])
    }

    @Test("a worker frozen past the session timeout: the other moves on; woken, it writes nothing stale")
    func frozenWorker() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        let count = 400
        let (lines, ids) = ChaosStack.stampTasks(count, prefix: "frozen", nap: 0.02)
        try createTopic(stack, partitions: 4)
        let frozen = try stack.base.startWorker("frozen", arguments: ["--batch-size", "10"])
        let other = try stack.base.startWorker("other", arguments: ["--batch-size", "10"])
        let run = try stack.base.run(input: lines.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let store = stack.store
        try ChaosStack.waitUntil(.seconds(60)) { (try store.counts()[.success] ?? 0) >= count / 5 }
        kill(frozen.processIdentifier, SIGSTOP)
        let stoppedAt = currentEpochMilliseconds()
        // Longer than session.timeout.ms (6 s) plus the broker's hold of the rejoin.
        Thread.sleep(forTimeInterval: 13)
        let snapshot = try stack.terminalSnapshot(ids)
        kill(frozen.processIdentifier, SIGCONT)
        let wokenAt = currentEpochMilliseconds()
        // The partition a task ran from is not part of its outside view: read the store's own record.
        let before = try store.records(ids: ids).compactMap { $0 }
        let held = Set(before.filter { $0.worker == "frozen" && ($0.finishedAt ?? .max) < stoppedAt }.compactMap(\.partition))
        let takenOver = before.filter {
            $0.worker == "other" && held.contains($0.partition ?? -1) && (stoppedAt...wokenAt).contains($0.finishedAt ?? 0)
        }
        #expect(!held.isEmpty && !takenOver.isEmpty, "the frozen worker's partitions \(held) must move on without it")
        let records = try stack.base.waitForTerminal(ids, timeout: .seconds(90))
        Thread.sleep(forTimeInterval: 2)  // whatever the woken worker would still write or commit
        try stack.verifyStamped(ids, records: try stack.base.records(ids), snapshots: [snapshot])
        #expect(records.allSatisfy { $0?.status == .success })
        #expect(ChaosStack.stop([frozen, other]) == [0, 0])
        // Every message is committed in the end (nothing left for a redelivery).
        #expect(try stack.committedOffsets(partitions: 4).reduce(0, +) == Int64(count))
    }

    @Test("Redis killed with -9 and restarted mid-run: producer and workers retry and resume, nothing lost")
    func redisRestart() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        let (ids, workers, producer) = try streamedRun(stack, prefix: "redis", count: 1500)
        // 40 MB of ballast in the append-only file: the restarted Redis answers LOADING for a
        // while, which workers and producer must wait out like the outage itself.
        let ballast = #"""
            import sys
            v = "b" * 1024
            for c in range(40):
                a = ["MSET"] + [x for k in range(1000) for x in (f"ballast:{c}:{k}", v)]
                sys.stdout.write(f"*{len(a)}\r\n" + "".join(f"${len(x)}\r\n{x}\r\n" for x in a))
            """#
        try ChaosStack.shell(#"python3 -c "$0" | redis-cli -p "$1" --pipe >/dev/null"#, [ballast, String(stack.settings.redis.port)])
        let snapshot = try stack.terminalSnapshot(ids)
        kill(try stack.servicePID("redis"), SIGKILL)
        Thread.sleep(forTimeInterval: 1.5)
        try stack.startServices()
        #expect(IntegrationStack.waitForExit(producer, timeout: .seconds(90)) == 0, "yadtq-run rides out the outage")
        let records = try stack.base.waitForTerminal(ids, timeout: .seconds(90))
        try stack.verifyStamped(ids, records: records, snapshots: [snapshot])
        #expect(ChaosStack.stop(workers) == [0, 0])
        for name in ["w1", "w2"] {
            let log = stack.base.workerLog(name)
            // Recovery is said by the Redis client when a call it was retrying gets through, or
            // by the batch when a write it was retrying does, whichever was waiting then.
            let recovered = log.contains("reachable again") || log.contains("Redis answers again")
            #expect(log.contains("retrying with backoff") && recovered, "\(name) reports the outage")
        }
    }

    @Test("the broker frozen (SIGSTOP) for 8 s mid-run: producer and workers ride through")
    func brokerStall() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        let (ids, workers, producer) = try streamedRun(stack, prefix: "stall", count: 1000)
        let snapshot = try stack.terminalSnapshot(ids)
        let broker = try stack.servicePID("tansu")
        kill(broker, SIGSTOP)
        Thread.sleep(forTimeInterval: 8)
        kill(broker, SIGCONT)
        #expect(IntegrationStack.waitForExit(producer, timeout: .seconds(90)) == 0, "yadtq-run rides out the stall")
        let records = try stack.base.waitForTerminal(ids, timeout: .seconds(90))
        try stack.verifyStamped(ids, records: records, snapshots: [snapshot])
        #expect(ChaosStack.stop(workers) == [0, 0])
    }

    @Test("the broker killed with -9 and restarted empty with tasks still queued: the scheduler publishes them again, all end SUCCESS once")
    func brokerRestart() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        let (lines, ids) = ChaosStack.stampTasks(400, prefix: "lost", nap: 0.03)
        try createTopic(stack, partitions: 4)
        let workers = try ["w1", "w2"].map { try stack.base.startWorker($0, arguments: ["--batch-size", "20"]) }
        let run = try stack.base.run(input: lines.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let store = stack.store
        try ChaosStack.waitUntil(.seconds(60)) { (try store.counts()[.success] ?? 0) >= 40 }
        let snapshot = try stack.terminalSnapshot(ids)
        // The local broker keeps everything in memory: restarted, it has no topic, no
        // message and no committed offset left.
        kill(try stack.servicePID("tansu"), SIGKILL)
        Thread.sleep(forTimeInterval: 1)
        try stack.startServices()
        let queued = try store.counts()[.queued] ?? 0
        print("broker restart: \(queued) tasks QUEUED when the broker came back empty")
        #expect(queued > 0, "the scenario needs tasks whose messages were lost")
        let records = try stack.base.waitForTerminal(ids, timeout: .seconds(120))
        try stack.verifyStamped(ids, records: records, snapshots: [snapshot])
        let logs = ["w1", "w2"].map { stack.base.workerLog($0) }.joined()
        #expect(logs.contains("lost tasks to"), "the scheduler said it published lost tasks again")
        for worker in workers where worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
    }

    /// A task type whose first attempt fails: it then waits out its backoff PROCESSING.
    private static let failsOnce = [
        "fails_once": """
            return function(args, task)
              if task.attempt == 1 then error("the first attempt fails", 0) end
              return task.attempt
            end
            """
    ]

    @Test("the broker restarted empty while a task waits for its retry (PROCESSING): the scheduler publishes it again and it ends SUCCESS")
    func brokerRestartDuringBackoff() throws {
        let stack = try ChaosStack(privateServices: true, extraPlugins: Self.failsOnce)
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 1)
        let worker = try stack.base.startWorker("w1", arguments: ["--retry-delay", "20s", "--retry-max-delay", "20s"])
        let run = try stack.base.run(input: #"{"id": "backoff-1", "type": "fails_once", "args": []}"# + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let store = stack.store
        // Attempt 1 failed: PROCESSING, its retry 20 s away, held by the worker alone.
        #expect(try ChaosStack.waitUntil(.seconds(60)) { try store.record(id: "backoff-1")?.errors.count == 1 })
        #expect(try store.record(id: "backoff-1")?.status == .processing)
        kill(try stack.servicePID("tansu"), SIGKILL)
        Thread.sleep(forTimeInterval: 1)
        try stack.startServices()
        let record = try stack.base.waitForTerminal(["backoff-1"], timeout: .seconds(90))[0]
        #expect(record?.status == .success, "\(String(describing: record))")
        #expect(record.map { $0.attempts <= 3 } == true)
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test("delayed tasks that come due while the broker is silent past a publish's delivery timeout stay QUEUED, not FAILED, and are published again at the next check once it answers")
    func brokerSilentWhileTasksComeDue() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 2)
        // A delivery timeout of 3 s, so the scheduler's publish gives up well within the freeze.
        let worker = try stack.base.startWorker("w1", environment: ["YADTQ_KAFKA_DELIVERY_TIMEOUT_MS": "3000"])
        #expect(try ChaosStack.waitUntil(.seconds(60)) { stack.base.workerLog("w1").contains("active on this worker") })
        let store = stack.store
        // One delayed task published first, so the scheduler knows the topic's partitions when
        // the broker goes silent (had it to read them first, the whole publish would fail, and
        // leave the tasks QUEUED whatever becomes of a message the broker does not answer for).
        let first = try stack.base.run(input: #"{"id": "due-first", "type": "add", "args": [1, 1], "delay": "1s"}"# + "\n")
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try ChaosStack.waitUntil(.seconds(30)) { try store.record(id: "due-first")?.status == .success })
        let ids = (0..<20).map { "due-\($0)" }
        let lines = ids.enumerated().map { #"{"id": "\#($1)", "type": "add", "args": [\#($0), 1], "delay": "3s"}"# }
        let run = try stack.base.run(input: lines.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let broker = try stack.servicePID("tansu")
        kill(broker, SIGSTOP)
        // Due 3 s in; the scheduler releases them and its publish waits 3 s for the broker.
        let gaveUp = ChaosStack.waitUntil(.seconds(30)) {
            stack.base.workerLog("w1").contains("still QUEUED, as the broker did not answer")
        }
        let statuses = try store.records(ids: ids).map { $0?.status }
        kill(broker, SIGCONT)
        #expect(gaveUp, "the scheduler says the broker did not answer for the due tasks: \(stack.base.workerLog("w1").suffix(2000))")
        #expect(statuses.allSatisfy { $0 == .queued }, "\(statuses)")
        let records = try stack.base.waitForTerminal(ids, timeout: .seconds(120))
        for (index, record) in records.enumerated() {
            #expect(record?.status == .success && record?.result == .int(Int64(index + 1)), "\(String(describing: record))")
        }
        // Owed a copy by the scheduler that released them, not left for a look to find lost
        // 30 s after their release.
        let log = stack.base.workerLog("w1")
        #expect(log.contains("tasks owed a copy to"), "\(log.suffix(2000))")
        #expect(!log.contains("lost tasks to"), "\(log.suffix(2000))")
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test(
        "the broker restarted empty while no worker ran, a task left PROCESSING by a killed worker: the next scheduler finds the end offsets kept in Redis higher, publishes it again, and it ends SUCCESS, whether a run or that scheduler makes the topic again",
        arguments: [true, false])
    func brokerRestartWhileNoWorkerRan(runMakesTopic: Bool) throws {
        let stack = try ChaosStack(privateServices: true, extraPlugins: Self.failsOnce)
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 1)
        let first = try stack.base.startWorker("w1", arguments: ["--retry-delay", "60s", "--retry-max-delay", "60s"])
        // A task before it, in a batch of its own: the local broker's end offset reads as the
        // start of the last batch, so the lost task's end must be above the empty log's 0.
        let before = try stack.base.run(input: "add 1 2\n")
        #expect(before.status == 0, "\(before.stderr)")
        let beforeIDs = before.stdout.split(separator: "\n").map(String.init)
        #expect(try stack.base.waitForTerminal(beforeIDs, timeout: .seconds(60)).allSatisfy { $0?.status == .success })
        let run = try stack.base.run(input: #"{"id": "orphan-1", "type": "fails_once", "args": []}"# + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let store = stack.store
        #expect(try ChaosStack.waitUntil(.seconds(60)) { try store.record(id: "orphan-1")?.errors.count == 1 })
        // The scheduler keeps the end offset past the task's message in Redis.
        #expect(try ChaosStack.waitUntil(.seconds(30)) { (try store.handover(of: stack.base.topic).ends[0] ?? 0) >= 1 })
        // The whole stack goes down: the worker first, then the broker, which comes back empty.
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        kill(try stack.servicePID("tansu"), SIGKILL)
        Thread.sleep(forTimeInterval: 1)
        try stack.startServices()
        #expect(try store.record(id: "orphan-1")?.status == .processing)
        // The stack comes back with the next run making the topic (here with no task, so the
        // broker's end offset stays below the one kept), or with the next worker alone: its
        // scheduler makes the topic again with the partitions of the ends kept.
        if runMakesTopic { try createTopic(stack, partitions: 1) }
        let second = try stack.base.startWorker("w2")
        let record = try stack.base.waitForTerminal(["orphan-1"], timeout: .seconds(120))[0]
        #expect(record?.status == .success, "\(String(describing: record))\n\(stack.base.workerLog("w2").suffix(2000))")
        #expect(try stack.base.topicPartitions()[stack.base.topic] == 1)
        #expect(stack.base.workerLog("w2").contains("lost the log"), "the new scheduler found the loss by the ends kept in Redis")
        #expect(ChaosStack.stop([second]) == [0])
    }

    @Test("a broker restarted empty lost the dead-letter topic too: the worker makes it again, and a failed task's copy reaches it")
    func deadLetterTopicAfterBrokerRestart() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 1)
        let worker = try stack.base.startWorker("w1")
        try stack.base.runSucceeding("add 1 2\n")
        kill(try stack.servicePID("tansu"), SIGKILL)
        Thread.sleep(forTimeInterval: 1)
        try stack.startServices()
        // The worker's scheduler makes the task topic again (no yadtq-run runs here, which
        // would make both topics).
        let dlq = stack.base.topic + ".dlq"
        #expect(try ChaosStack.waitUntil(.seconds(60)) { try stack.base.topicPartitions()[stack.base.topic] != nil })
        #expect(try stack.base.topicPartitions()[dlq] == nil, "the broker lost the dead-letter topic")
        let poison = #"{"id": "after-restart", "type": "no_such_type", "args": []}"#
        _ = try stack.produceRaw([Array(poison.utf8)], partition: 0)
        let record = try stack.base.waitForTerminal(["after-restart"], timeout: .seconds(90))[0]
        #expect(record?.status == .failed)
        // One more than expected, so that a copy sent twice would show.
        let copies = try stack.base.readTopic(dlq, expecting: 2, timeout: .seconds(12))
        #expect(copies.count == 1 && copies.first?.contains(#""id":"after-restart""#) == true, "\(copies)")
        #expect(stack.base.workerLog("w1").contains("was missing"), "\(stack.base.workerLog("w1").suffix(1500))")
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test("poison written straight to the topic ends FAILED with a reason and in the DLQ; the partition moves on")
    func poisonMessages() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 2)
        let worker = try stack.base.startWorker("w1", arguments: ["--batch-size", "20"])
        let (lines, ids) = ChaosStack.stampTasks(40, prefix: "good", nap: 0)
        #expect(try stack.base.run(input: lines[..<20].joined(separator: "\n") + "\n").status == 0)
        let big = String(repeating: "x", count: 2 * 1024 * 1024)
        // Without an id: the worker names them poison-<topic>-<partition>-<offset>.
        let anonymous: [[UInt8]] = [
            [0xFF, 0xFE, 0x00] + Array(" not json".utf8), [], Array("[1, 2, 3]".utf8), Array(#"{"no": "id"}"#.utf8),
            Array(("{" + big).utf8),
        ]
        let named: [(id: String, value: String, reason: String)] = [
            ("p-unknown", #"{"id": "p-unknown", "type": "no_such_type", "args": [1]}"#, "no_such_type"),
            ("p-args", #"{"id": "p-args", "type": "add", "args": "1 2"}"#, "args"),
            ("p-oversize", #"{"id": "p-oversize", "type": "no_such_type", "args": [""# + big + #""]}"#, "no_such_type"),
        ]
        var poisonIDs: [String] = []
        for partition: Int32 in [0, 1] {
            let written = try stack.produceRaw(anonymous, partition: partition)
            #expect(written.count == anonymous.count)
            poisonIDs += written.map { "poison-\(stack.topic)-\($0.partition)-\($0.offset)" }
        }
        _ = try stack.produceRaw(named.map { Array($0.value.utf8) }, partition: 0)
        poisonIDs += named.map(\.id)
        #expect(try stack.base.run(input: lines[20...].joined(separator: "\n") + "\n").status == 0)
        let good = try stack.base.waitForTerminal(ids, timeout: .seconds(60))
        try stack.verifyStamped(ids, records: good)
        let poison = try stack.base.waitForTerminal(poisonIDs, timeout: .seconds(30))
        for (id, record) in zip(poisonIDs, poison) {
            #expect(record?.status == .failed && record?.error?.isEmpty == false, "\(id): \(String(describing: record))")
            #expect(record?.attempts == 1, "\(id): a poison message is not retried")
        }
        for (entry, record) in zip(named, poison.suffix(named.count)) {
            #expect(record?.error?.contains(entry.reason) == true, "\(entry.id): \(record?.error ?? "")")
        }
        #expect(worker.isRunning, "the worker survives every poison message")
        let letters = try stack.base.readTopic(stack.topic + ".dlq", expecting: poisonIDs.count)
        let lettered = Set(letters.compactMap { try? JSONValue(parsing: $0) }.filter { $0["error"]?.stringValue != nil }
            .compactMap { $0["id"]?.stringValue })
        #expect(lettered == Set(poisonIDs), "every poison message has a dead-letter copy with its reason")
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test("yadtq-run fed random bytes, invalid UTF-8, a 10 MB line and 10,000 bad lines: clear errors, good lines published")
    func badProducerInput() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 2)
        let worker = try stack.base.startWorker("w1")
        var generator = SeededGenerator(seed: 7)
        let cases: [(name: String, bytes: [UInt8], errors: Int)] = [
            ("random", (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }, 1),
            ("utf8", Array("add ".utf8) + [0xFF, 0xFE] + Array(" 1\nconcat \"".utf8) + [0xC3, 0x28] + Array("\" x\n".utf8), 2),
            ("huge", Array("echo ".utf8) + [UInt8](repeating: UInt8(ascii: "y"), count: 10 * 1024 * 1024), 0),
            ("many", Array(String(repeating: "add 1 [unclosed\n{\"type\": 5}\n", count: 5000).utf8), 10_000),
        ]
        var goodIDs: [String] = []
        for entry in cases {
            let good = (0..<4).map { #"{"id": "ok-\#(entry.name)-\#($0)", "type": "stamp_add", "args": [\#($0), 1, 0]}"# }
            goodIDs += (0..<4).map { "ok-\(entry.name)-\($0)" }
            let input = Array((good[..<2].joined(separator: "\n") + "\n").utf8) + entry.bytes
                + Array(("\n" + good[2...].joined(separator: "\n") + "\n").utf8)
            let run = try stack.base.run(input: input)
            #expect(run.reason == .exit, "\(entry.name): yadtq-run must not crash")
            let errors = run.stderr.split(separator: "\n").filter { $0.hasPrefix("-:") }
            #expect(errors.count >= entry.errors, "\(entry.name): \(errors.count) errors reported: \(run.stderr.prefix(300))")
            if entry.errors > 0 { #expect(run.status == 1, "\(entry.name): bad lines make the exit status 1") }
            #expect(run.stdout.split(separator: "\n").count >= 4, "\(entry.name): the good lines are published")
        }
        let records = try stack.base.waitForTerminal(goodIDs, timeout: .seconds(60))
        for (id, record) in zip(goodIDs, records) {
            #expect(record?.status == .success, "\(id): \(String(describing: record))")
        }
        #expect(worker.isRunning)
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test("a task another worker's attempt still runs is not run again: skipped once that one ends it, taken over once that worker's heartbeat goes stale")
    func attemptElsewhere() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 1)
        let store = stack.store
        // Worker "other" began both in its batch `started`, as a worker does whose partition
        // moves to w1 in the middle of that batch, and beats with that batch in hand.
        let started = currentEpochMilliseconds()
        let tasks = [("ended", 1), ("taken", 2)].map {
            TaskMessage(id: $0.0, type: "add", args: [1, 2], maxAttempts: $0.1, queuedAt: started)
        }
        #expect(try store.queue(tasks).allSatisfy { $0 == .queued })
        #expect(try store.begin(tasks, partitions: [0, 0], worker: "other", at: started) == [.run(attempt: 1), .run(attempt: 1)])
        func beat() throws {
            try store.writeHeartbeat(
                worker: "other",
                Heartbeat(
                    lastHeartbeat: currentEpochMilliseconds(), state: .busy, pid: 1, host: "h", startedAt: started - 1_000,
                    intervalMilliseconds: 1_000, batchStartedAt: started))
        }
        try beat()
        let worker = try stack.base.startWorker("w1")
        // Their messages, as the partition's next owner reads them.
        #expect(try stack.produceRaw(tasks.map { $0.encoded() }, partition: 0).count == 2)
        #expect(
            try ChaosStack.waitUntil(.seconds(30)) {
                try beat()
                return stack.base.workerLog("w1").contains("still run on other workers")
            })
        // "other" ends the first, then dies: w1 skips the first and takes the second over.
        let outcome = AttemptOutcome(id: "ended", attempt: 1, kind: .success, payload: "3")
        #expect(try store.finish([outcome], worker: "other", begunAt: started, at: currentEpochMilliseconds()) == [true])
        let records = try stack.base.waitForTerminal(tasks.map(\.id), timeout: .seconds(60))
        #expect(records[0]?.status == .success && records[0]?.attempts == 1 && records[0]?.worker == "other")
        #expect(records[1]?.status == .success && records[1]?.attempts == 2 && records[1]?.worker == "w1")
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test("a task longer than max.poll.interval.ms: the worker stays in the group and runs it once")
    func longTask() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        try createTopic(stack, partitions: 2)
        let worker = try stack.base.startWorker(
            "w1", arguments: ["--batch-size", "10"], environment: ["YADTQ_KAFKA_MAX_POLL_INTERVAL_MS": "7000"])
        let (lines, ids) = ChaosStack.stampTasks(10, prefix: "quick", nap: 0)
        let input = [#"{"id": "long", "type": "sleep", "args": [10]}"#] + lines
        #expect(try stack.base.run(input: input.joined(separator: "\n") + "\n").status == 0)
        let records = try stack.base.waitForTerminal(["long"] + ids, timeout: .seconds(60))
        let long = try #require(records[0])
        #expect(long.status == .success && long.attempts == 1, "\(long)")
        try stack.verifyStamped(ids, records: Array(records.dropFirst()))
        Thread.sleep(forTimeInterval: 1)
        let log = stack.base.workerLog("w1")
        #expect(!log.contains("maximum poll interval"), "the worker was thrown out of the group")
        #expect(!log.contains("revoked partitions"), "the worker lost its partitions")
        #expect(ChaosStack.stop([worker]) == [0])
    }
}

/// A small deterministic generator (SplitMix64) for reproducible random input.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
