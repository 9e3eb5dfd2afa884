import Foundation
import Testing
import YADTQCore

/// Delayed tasks, periodic tasks, the scheduler's lease and lost tasks, on a real stack.
@Suite("Scheduler", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct SchedulerTests {
    /// Starts a worker and waits until it ran a first task (it has joined the group).
    func readyWorker(
        _ stack: IntegrationStack, _ name: String, arguments: [String] = [], environment: [String: String] = [:]
    ) throws -> Process {
        let worker = try stack.startWorker(name, arguments: arguments, environment: environment)
        let id = "warm-\(name)"
        _ = try stack.run(input: #"{"id": "\#(id)", "type": "add", "args": [1, 2]}"# + "\n")
        #expect(try stack.waitForTerminal([id], timeout: .seconds(30))[0]?.status == .success)
        return worker
    }

    func stop(_ workers: Process...) {
        for worker in workers where worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
    }

    func lines(_ outcome: IntegrationStack.RunOutcome) throws -> [JSONValue] {
        try outcome.stdout.split(separator: "\n").map { try JSONValue(parsing: String($0)) }
    }

    @Test("end after tasks scheduled for later is not published: the workers stay to release them")
    func endAfterScheduled() throws {
        let stack = try IntegrationStack(label: "delayend")
        let run = try stack.run(input: "add 1 2\n" + #"{"id": "soon", "type": "echo", "args": [1], "delay": "1h"}"# + "\nend\n")
        #expect(run.status == 1)
        #expect(
            run.stderr.contains("-:3: `end` not published: 1 task(s) of this run are still SCHEDULED (the last is due "),
            "\(run.stderr)")
        #expect(run.stderr.contains("echo end | yadtq-run --topic \(stack.topic)"), "\(run.stderr)")
        #expect(try stack.store.endOfStream(topic: stack.topic) == nil, "no end marker was published")
        #expect(try stack.store.statuses(of: ["soon"]) == [.scheduled])

        let plain = try stack.run(input: "add 1 2\nend\n")
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(try stack.store.endOfStream(topic: stack.topic) != nil, "a run with nothing scheduled publishes its end")
    }

    @Test("a delayed task waits SCHEDULED, then starts no earlier than its time and within a second after")
    func delayedTasks() throws {
        let stack = try IntegrationStack(label: "delay")
        let worker = try readyWorker(stack, "w1")
        defer { stop(worker) }
        let now = currentEpochMilliseconds()
        let input = """
            {"id": "d1", "type": "echo", "args": [1], "delay": "2s"}
            {"id": "d2", "type": "echo", "args": [2], "delay": 1.5}
            {"id": "a1", "type": "echo", "args": [3], "at": \(now + 2500)}
            {"id": "a2", "type": "echo", "args": [4], "at": "2001-01-01T00:00:00Z"}
            """
        let run = try stack.run(input: input + "\n", arguments: ["--json"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try lines(run).map { $0["status"]?.stringValue } == ["SCHEDULED", "SCHEDULED", "SCHEDULED", "QUEUED"])
        let flagged = try stack.run(input: #"{"id": "f1", "type": "echo", "args": [5]}"# + "\n", arguments: ["--delay", "1s"])
        #expect(flagged.status == 0 && flagged.stdout.contains("SCHEDULED"), "\(flagged.stdout)")

        let listed = try stack.ctl(["ls", "--status", "SCHEDULED", "--json"])
        let scheduled = try lines(listed).compactMap { $0["id"]?.stringValue }
        #expect(Set(scheduled) == ["d1", "d2", "a1", "f1"], "\(listed.stdout) \(listed.stderr)")
        let stats = try stack.ctl(["stats", "--json"])
        #expect(stats.stdout.contains(#""SCHEDULED":4"#), "\(stats.stdout)")

        let records = try stack.waitForTerminal(["d1", "d2", "a1", "a2", "f1"], timeout: .seconds(30))
        for record in records {
            let record = try #require(record)
            #expect(record.status == .success, "\(record.id): \(record.status)")
            guard record.id != "a2" else {
                #expect(record.dueAt == nil, "an at in the past runs at once")
                continue
            }
            let due = try #require(record.dueAt, "\(record.id)")
            let started = try #require(record.startedAt)
            print("delayed task \(record.id): started \(started - due) ms after its time")
            #expect(started >= due, "\(record.id) started \(due - started) ms early")
            // Released at the scheduler's next tick, then polled: seconds late only on a busy machine.
            #expect(started - due <= 3000, "\(record.id) started \(started - due) ms late")
        }
        #expect(records[0]?.dueAt == records[0].map { $0.queuedAt! + 2000 })
        #expect(records[2]?.dueAt == now + 2500)
    }

    @Test("a cancelled SCHEDULED task never runs")
    func cancelScheduled() throws {
        let stack = try IntegrationStack(label: "unsched")
        let worker = try readyWorker(stack, "w1")
        defer { stop(worker) }
        _ = try stack.run(input: #"{"id": "later", "type": "echo", "args": [1], "delay": "1500ms"}"# + "\n")
        let cancel = try stack.ctl(["cancel", "later"])
        #expect(cancel.status == 0)
        #expect(cancel.stdout.contains("later: SCHEDULED -> CANCELLED"), "\(cancel.stdout) \(cancel.stderr)")
        Thread.sleep(forTimeInterval: 3)
        let record = try #require(try stack.records(["later"])[0])
        #expect(record.status == .cancelled)
        #expect(record.attempts == 0 && record.startedAt == nil && record.worker == nil)
        #expect(try stack.store.counts()[.scheduled] == 0)
    }

    @Test("a bad delay or at is refused with the reason and queues nothing")
    func badInput() throws {
        let stack = try IntegrationStack(label: "baddelay")
        let bad = try stack.run(
            input: """
                {"id": "b1", "type": "echo", "delay": "soon"}
                {"id": "b2", "type": "echo", "at": "tomorrow"}
                {"id": "b3", "type": "echo", "delay": "1s", "at": 5}
                {"id": "ok", "type": "echo"}

                """)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains(#"invalid "delay" "soon""#), "\(bad.stderr)")
        #expect(bad.stderr.contains(#"invalid "at" "tomorrow""#), "\(bad.stderr)")
        #expect(bad.stderr.contains("not both"), "\(bad.stderr)")
        #expect(try stack.store.statuses(of: ["b1", "b2", "b3", "ok"]) == [nil, nil, nil, .queued])
        let flag = try stack.run(input: "echo 1\n", arguments: ["--delay", "later"])
        #expect(flag.status != 0)
        #expect(flag.stderr.contains("--delay"), "\(flag.stderr)")
        #expect(try stack.store.counts()[.queued] == 1, "nothing of the refused run was queued")
    }

    @Test("periodic ticks: queued once across two workers as <type>@<time>; removing the plugin stops them")
    func periodicTicks() throws {
        let stack = try IntegrationStack(
            label: "ticks",
            extraPlugins: ["tick": #"return { every = "1s", schedule_args = { "hello" }, run = function(args, task) return args[1] end }"#])
        let w1 = try readyWorker(stack, "w1")
        let w2 = try readyWorker(stack, "w2")
        defer { stop(w1, w2) }
        Thread.sleep(forTimeInterval: 5)
        let ticks = try lines(try stack.ctl(["ls", "--type", "tick", "--limit", "1000", "--json"]))
        let ids = ticks.compactMap { $0["id"]?.stringValue }.sorted()
        #expect(ids.count >= 5, "\(ids)")
        for id in ids {
            #expect(TaskDeclaration.isValidID(id))
            #expect(id.wholeMatch(of: /tick@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z/) != nil, "\(id)")
        }
        // Consecutive seconds: no tick missed, none queued twice.
        let times = ids.compactMap { TaskStart.epochMilliseconds(String($0.dropFirst(5))) }
        #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 == 1000 }, "\(ids)")
        let records = try stack.waitForTerminal(ids, timeout: .seconds(20))
        #expect(records.allSatisfy { $0?.status == .success && $0?.attempts == 1 && $0?.result == "hello" }, "\(records)")
        let queuedBy = ["w1", "w2"].map { stack.workerLog($0).components(separatedBy: "queued periodic task").count - 1 }
        #expect(queuedBy.reduce(0, +) >= ids.count && queuedBy.contains(0), "each tick queued by one worker: \(queuedBy)")

        let stats = try stack.ctl(["stats"])
        #expect(stats.stdout.contains("schedule tick") && stats.stdout.contains("every 1s, next 20"), "\(stats.stdout)")

        try FileManager.default.removeItem(atPath: stack.pluginsDirectory + "/tick.lua")
        Thread.sleep(forTimeInterval: 2.5)  // the watcher rescans every second
        let afterRemoval = try lines(try stack.ctl(["ls", "--type", "tick", "--limit", "1000", "--json"])).count
        Thread.sleep(forTimeInterval: 2)
        #expect(try lines(try stack.ctl(["ls", "--type", "tick", "--limit", "1000", "--json"])).count == afterRemoval)
    }

    @Test("a periodic plugin on a topic nobody made: the scheduler makes it, with yadtq-run's default partitions, and the tick's task runs to SUCCESS")
    func periodicTickOnNewTopic() throws {
        let stack = try IntegrationStack(
            label: "newtick", extraPlugins: ["tick": #"return { every = "1s", run = function() return "ticked" end }"#])
        let worker = try stack.startWorker("w1")
        defer { stop(worker) }
        let succeeded = {
            try self.lines(try stack.ctl(["ls", "--type", "tick", "--status", "SUCCESS", "--json"])).compactMap { $0["id"]?.stringValue }
        }
        #expect(try ChaosStack.waitUntil(.seconds(60)) { try !succeeded().isEmpty }, "\(stack.workerLog("w1").suffix(2000))")
        #expect(try stack.topicPartitions()[stack.topic] == TaskPublisher.defaultPartitions)
    }

    @Test("a bad cron makes the plugin fail to load with the reason")
    func badCron() throws {
        let stack = try IntegrationStack(
            label: "badcron", extraPlugins: ["nightly": #"return { cron = "0 25 * * *", run = function() return 1 end }"#])
        let check = try stack.runCommand("yadtq-worker", arguments: ["--check", stack.pluginsDirectory], input: [])
        #expect(check.status == 1)
        #expect(check.stdout.contains("nightly") && check.stdout.contains("'cron' hour field"), "\(check.stdout)")
    }

    @Test("scheduler failover: kill -9 the lease holder, another worker takes over within seconds")
    func failover() throws {
        let stack = try IntegrationStack(label: "failover")
        let workers = ["w1": try readyWorker(stack, "w1"), "w2": try readyWorker(stack, "w2")]
        defer { for worker in workers.values { stop(worker) } }
        let lease = SchedulerLeaseStore(settings: stack.settings, topic: stack.topic, logger: stack.logger)
        let holder = try #require(try lease.holder())
        let name = String(holder.prefix { $0 != "#" })
        let other = name == "w1" ? "w2" : "w1"
        stop(workers[name]!)
        let killed = ContinuousClock.now
        _ = try stack.run(input: #"{"id": "after", "type": "echo", "args": [1], "delay": "1s"}"# + "\n")
        var takenOver: Duration?
        while ContinuousClock.now - killed < .seconds(15) {
            if let now = try lease.holder(), now.hasPrefix(other + "#") {
                takenOver = ContinuousClock.now - killed
                break
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let taken = try #require(takenOver, "no worker took the lease over")
        print("scheduler failover: \(other) took the lease \(taken) after \(name) was killed")
        // The lease ends at most its duration after the kill, and the other worker tries for it
        // every renewal interval; 2 s more for a busy machine.
        let rules = SchedulerLease()
        #expect(taken <= rules.duration + rules.renewEvery + .seconds(2))
        let record = try #require(try stack.waitForTerminal(["after"], timeout: .seconds(30))[0])
        #expect(record.status == .success && record.worker == other)
    }

    @Test("--no-scheduler: such a worker never runs the scheduler; one without it does")
    func optOut() throws {
        let stack = try IntegrationStack(label: "optout")
        let standby = try readyWorker(stack, "w1", arguments: ["--no-scheduler"])
        defer { stop(standby) }
        _ = try stack.run(input: #"{"id": "waits", "type": "echo", "args": [1], "delay": "200ms"}"# + "\n")
        Thread.sleep(forTimeInterval: 2)
        #expect(try stack.store.statuses(of: ["waits"]) == [.scheduled], "nobody runs the scheduler")
        let lease = SchedulerLeaseStore(settings: stack.settings, topic: stack.topic, logger: stack.logger)
        #expect(try lease.holder() == nil)
        let scheduler = try stack.startWorker("w2")
        defer { stop(scheduler) }
        let record = try #require(try stack.waitForTerminal(["waits"], timeout: .seconds(30))[0])
        #expect(record.status == .success)
        #expect(try lease.holder()?.hasPrefix("w2#") == true)
    }

    @Test(
        "a shard whose call fails (its master away) does not hold back the due tasks of the shards after it",
        .enabled(if: IntegrationStack.isClusterStack, "needs the shards of a Redis Cluster"))
    func failingShardDoesNotHoldBackTheOthers() throws {
        let stack = try IntegrationStack(label: "shardfail")
        let keys = stack.store.keys
        let ids = (0..<100).map { "due-\($0)" }
        let failing = try #require(ids.min { keys.shard(of: $0) < keys.shard(of: $1) })
        let other = try #require(ids.first { keys.shard(of: $0) > keys.shard(of: failing) })
        let now = currentEpochMilliseconds()
        let tasks = [failing, other].map { TaskMessage(id: $0, type: "add", args: [1, 2], maxAttempts: 1, queuedAt: now) }
        #expect(try stack.store.queue(tasks, dueAt: [now + 2_000, now + 2_000], topic: stack.topic) == [.scheduled, .scheduled])
        // The failing task's shard: its set of scheduled tasks becomes a string, so every call of
        // the release script on that shard fails (WRONGTYPE), as on a master that is away.
        let pattern = "\(stack.settings.keyPrefix)*scheduled:\(stack.topic)"
        let sets = Set(try stack.redisOnEveryNode(["--scan", "--pattern", pattern]).joined())
        let breakIt = "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('SET', KEYS[1], 'broken') return 1 end return 0"
        for key in sets { _ = try stack.redisOnEveryNode(["EVAL", breakIt, "1", key, failing]) }

        let worker = try readyWorker(stack, "w1")
        defer { stop(worker) }
        let record = try #require(try stack.waitForTerminal([other], timeout: .seconds(30))[0])
        #expect(record.status == .success)
        #expect(try stack.store.statuses(of: [failing]) == [.scheduled])
        #expect(stack.workerLog("w1").contains("due tasks: shard \(keys.shard(of: failing)) of \(keys.shards): "), "\(stack.workerLog("w1"))")
    }

    @Test("a QUEUED task whose message never reached the broker is published again, once")
    func lostTask() throws {
        let stack = try IntegrationStack(label: "lost")
        let worker = try readyWorker(stack, "w1")
        defer { stop(worker) }
        // As a producer that died between its Redis write and its publish leaves them.
        let now = currentEpochMilliseconds()
        let old = TaskMessage(id: "lost-old", type: "add", args: [2, 2], maxAttempts: 3, queuedAt: now - 120_000)
        let recent = TaskMessage(id: "lost-recent", type: "add", args: [3, 3], maxAttempts: 3, queuedAt: now)
        #expect(try stack.store.queue([old, recent], topic: stack.topic) == [.queued, .queued])
        let record = try #require(try stack.waitForTerminal([old.id], timeout: .seconds(20))[0])
        #expect(record.status == .success && record.result == 4 && record.attempts == 1)
        #expect(try stack.store.statuses(of: [recent.id]) == [.queued], "queued too recently to be taken for lost")
        #expect(stack.workerLog("w1").contains("published 1 lost tasks"), "\(stack.workerLog("w1"))")
    }

    /// One look for lost tasks over every shard, as the scheduler makes it (an incremental one
    /// when `from` is not 0): the ids it took, sorted, and how many ids it read.
    func lookForLost(
        _ stack: IntegrationStack, from: Int64, cutoff: Int64, at now: Int64, includingProcessing: Bool = false
    ) throws -> (ids: [String], looked: Int) {
        let store = stack.store
        var ids: [String] = []
        var looked = 0
        for shard in 0..<store.keys.shards {
            var cursor = ""
            repeat {
                let taken = try store.takeLost(
                    topic: stack.topic, queuedFrom: from, to: cutoff, cutoff: cutoff, includingProcessing: includingProcessing, at: now,
                    shard: shard, cursor: cursor)
                ids += taken.tasks.map(\.id)
                looked += taken.looked
                cursor = taken.cursor
            } while !cursor.isEmpty
        }
        return (ids.sorted(), looked)
    }

    @Test("a task retried, released or published again, or written late, whose message is lost is found by a look at the recent queued times only, which reads no older task")
    func sentAgainFoundWithoutWholeLook() throws {
        let stack = try IntegrationStack(label: "resent")
        let store = stack.store
        let start = currentEpochMilliseconds()
        func task(_ id: String, queuedAt: Int64 = start) -> TaskMessage {
            TaskMessage(id: id, type: "add", args: [1, 1], maxAttempts: 1, queuedAt: queuedAt)
        }
        // Tasks of the past, ended and kept: a look at every queued time reads them all.
        let old = (0..<2_500).map { task("old-\($0)") }
        #expect(Set(try store.queue(old, topic: stack.topic)) == [.queued])
        _ = try store.cancel(old.map(\.id), at: start)
        // Never published (a producer that died); one to retry, one to release later.
        #expect(try store.queue([task("republished"), task("retried")], topic: stack.topic) == [.queued, .queued])
        _ = try store.cancel(["retried"], at: start)
        #expect(try store.queue([task("released")], dueAt: [start + 5_000], topic: stack.topic) == [.scheduled])

        // The takeover's look at every queued time reads every task, and takes the one never published.
        let whole = try lookForLost(stack, from: 0, cutoff: start + 10_000, at: start + 20_000)
        #expect(whole.ids == ["republished"])
        #expect(whole.looked >= 2_500)

        // Sent again after the scheduler looked past their queued time, and lost: an operator's
        // retry and a release whose publish went nowhere, the copy of `republished`; and a
        // producer's QUEUED write that landed two minutes after its queued time.
        #expect(try store.requeue(["retried"], at: start + 30_000) == [.requeued])
        let released = try store.releaseDue(topic: stack.topic, at: start + 30_000, shard: store.keys.shard(of: "released"))
        #expect(released.tasks.map(\.message.id) == ["released"])
        #expect(try store.queue([task("late", queuedAt: start - 120_000)], topic: stack.topic) == [.queued])

        let sentAgain = ["late", "released", "republished", "retried"]
        #expect(try store.lostCheckCounts() == (queued: 4, processing: 0, sentAgain: 4))
        let incremental = try lookForLost(stack, from: start + 10_000, cutoff: start + 60_000, at: start + 61_000)
        #expect(incremental.ids == sentAgain)
        #expect(incremental.looked <= 10, "read \(incremental.looked) ids")
        let replayed = try lookForLost(stack, from: start + 10_000, cutoff: start + 60_000, at: start + 61_000)
        #expect(replayed.ids == sentAgain, "a replayed look answers the same")
        // Their copies were lost as well: the next look finds them again.
        #expect(try lookForLost(stack, from: start + 60_000, cutoff: start + 120_000, at: start + 121_000).ids == sentAgain)

        // Ended: their ids leave `resent` at the next look, which then reads nothing.
        _ = try store.cancel(sentAgain, at: start + 122_000)
        let cleared = try lookForLost(stack, from: start + 120_000, cutoff: start + 180_000, at: start + 181_000)
        #expect(cleared.ids.isEmpty && cleared.looked == sentAgain.count)
        #expect(try lookForLost(stack, from: start + 180_000, cutoff: start + 240_000, at: start + 241_000).looked == 0)

        // More sent again than a call reads: each is taken once, over several calls.
        #expect(try store.requeue(old.map(\.id), at: start + 250_000).allSatisfy { $0 == .requeued })
        let many = try lookForLost(stack, from: start + 240_000, cutoff: start + 300_000, at: start + 301_000)
        #expect(many.ids == old.map(\.id).sorted())
    }

    @Test("after a lost log, a look from where the looks reached takes every task in flight, sent again or queued since, each once, and reads no other kept task")
    func lostLogLookFromWhereLooksReached() throws {
        let stack = try IntegrationStack(label: "lostlog")
        let store = stack.store
        let start = currentEpochMilliseconds()
        // Queued before the looks reached (start + 10 s): 2,500 ended and kept, 2,500 in flight on
        // a worker, one retried (in `resent`); then, since, one waiting and one in flight.
        let queuedAtStart = { (id: String) in TaskMessage(id: id, type: "add", args: [1, 1], maxAttempts: 3, queuedAt: start) }
        let ended = (0..<2_500).map { queuedAtStart("ended-\($0)") }
        let inFlight = (0..<2_500).map { queuedAtStart("running-\($0)") }
        #expect(Set(try store.queue(ended + inFlight + [queuedAtStart("retried")], topic: stack.topic)) == [.queued])
        _ = try store.cancel(ended.map(\.id) + ["retried"], at: start)
        #expect(try store.requeue(["retried"], at: start + 5_000) == [.requeued])
        let begun = try store.begin(inFlight, partitions: inFlight.map { _ in 0 }, worker: "w-gone", at: start)
        #expect(begun.allSatisfy { $0 == .run(attempt: 1) })
        let recent = ["recent-queued", "recent-running"].map {
            TaskMessage(id: $0, type: "add", args: [1, 1], maxAttempts: 3, queuedAt: start + 20_000)
        }
        #expect(try store.queue(recent, topic: stack.topic) == [.queued, .queued])
        #expect(try store.begin([recent[1]], partitions: [1], worker: "w-gone", at: start + 21_000) == [.run(attempt: 1)])

        let expected = (inFlight.map(\.id) + ["recent-queued", "recent-running", "retried"]).sorted()
        let bounded = try lookForLost(stack, from: start + 10_000, cutoff: start + 60_000, at: start + 61_000, includingProcessing: true)
        let boundedTookThem = bounded.ids == expected
        #expect(boundedTookThem, "took \(bounded.ids.count) of \(expected.count), first \(bounded.ids.prefix(5))")
        #expect(bounded.looked < 2_600, "read \(bounded.looked) ids")
        // The same look over every queued time (replayed: the same `now`) takes the same tasks,
        // reading every kept one.
        let whole = try lookForLost(stack, from: 0, cutoff: start + 60_000, at: start + 61_000, includingProcessing: true)
        let wholeTookThem = whole.ids == expected
        #expect(wholeTookThem, "took \(whole.ids.count) of \(expected.count)")
        #expect(whole.looked >= 5_000)
    }

    @Test("a retried task whose publish is lost, long after the takeover's look, is published again by an ordinary check and ends SUCCESS")
    func retriedTaskLostAfterTakeover() throws {
        let stack = try IntegrationStack(label: "retrylost")
        let now = currentEpochMilliseconds()
        // Never published: the takeover's look (at every queued time) publishes it.
        let first = TaskMessage(id: "lost-first", type: "add", args: [1, 1], maxAttempts: 3, queuedAt: now - 120_000)
        let retried = TaskMessage(id: "lost-retried", type: "add", args: [20, 22], maxAttempts: 3, queuedAt: now - 120_000)
        #expect(try stack.store.queue([first, retried], topic: stack.topic) == [.queued, .queued])
        _ = try stack.store.cancel([retried.id], at: now)
        let worker = try readyWorker(stack, "w1")
        defer { stop(worker) }
        #expect(try stack.waitForTerminal([first.id], timeout: .seconds(90))[0]?.status == .success)
        // An operator's retry whose publish went nowhere, after that look.
        #expect(try stack.store.requeue([retried.id], at: currentEpochMilliseconds()) == [.requeued])
        let record = try #require(try stack.waitForTerminal([retried.id], timeout: .seconds(150))[0])
        #expect(record.status == .success && record.result == 42)
    }

    @Test("a scheduler taking over goes on from where the last one's looks for lost tasks reached, without reading every kept task, and publishes a task lost meanwhile")
    func takeoverFromHandover() throws {
        let stack = try IntegrationStack(label: "handover")
        let store = stack.store
        let start = currentEpochMilliseconds()
        // Tasks of the past, ended and kept: a look at every queued time reads them all.
        let old = (0..<2_500).map { TaskMessage(id: "old-\($0)", type: "add", args: [1, 1], maxAttempts: 1, queuedAt: start) }
        #expect(Set(try store.queue(old, topic: stack.topic)) == [.queued])
        _ = try store.cancel(old.map(\.id), at: start)
        let debug = ["YADTQ_LOG_LEVEL": "debug"]
        let first = try readyWorker(stack, "w1", environment: debug)
        defer { stop(first) }
        #expect(try ChaosStack.waitUntil(.seconds(60)) { try store.handover(of: stack.topic).lookedTo != nil })
        // Stopped: it leaves the group and hands the lease over.
        kill(first.processIdentifier, SIGTERM)
        first.waitUntilExit()
        let handedOver = try #require(try store.handover(of: stack.topic).lookedTo)
        // Never published (a producer that died), queued after the last look reached.
        let lost = TaskMessage(id: "lost-meanwhile", type: "add", args: [20, 22], maxAttempts: 3, queuedAt: currentEpochMilliseconds())
        #expect(try store.queue([lost], topic: stack.topic) == [.queued])
        let second = try readyWorker(stack, "w2", environment: debug)
        defer { stop(second) }
        let record = try #require(try stack.waitForTerminal([lost.id], timeout: .seconds(120))[0])
        #expect(record.status == .success && record.result == 42)
        let looks = stack.workerLog("w2").split(separator: "\n").filter { $0.contains("looked for lost tasks of \(stack.topic) among") }
        #expect(!looks.isEmpty, "\(stack.workerLog("w2"))")
        #expect(looks.allSatisfy { !$0.contains("(queued from 0)") }, "\(looks)")
        #expect(looks.first?.contains("(queued from \(handedOver))") == true, "\(looks)")
    }
}
