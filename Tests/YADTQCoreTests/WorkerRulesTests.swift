import Testing
import YADTQCore

@Suite("Poison message")
struct PoisonMessageTests {
    @Test("fails under its own id when it can be read, else under its position")
    func naming() {
        let position = TaskPosition(partition: 2, offset: 9)
        let named = PoisonMessage.task(
            for: TopicMessageError(id: "abc", reason: "too deep"), value: Array("{".utf8), at: position, topic: "t", now: 5)
        #expect(named.message.id == "abc" && named.message.maxAttempts == 1 && named.poison == "undecodable message: too deep")
        let anonymous = PoisonMessage.task(
            for: TopicMessageError(id: nil, reason: "not JSON"), value: Array("x".utf8), at: position, topic: "t", now: 5)
        #expect(anonymous.message.id == "poison-t-2-9" && anonymous.message.args == [.string("x")])
    }
}

@Suite("Call clock")
struct CallClockTests {
    @Test("strictly increasing: the wall clock's time, or one past the last call's while the wall clock has not moved on or stepped back")
    func strictlyIncreasing() {
        var clock = CallClock()
        #expect(clock.next(wall: 1_000) == 1_000)
        #expect(clock.next(wall: 1_000) == 1_001, "a second call in the same millisecond")
        #expect(clock.next(wall: 1_000) == 1_002)
        #expect(clock.next(wall: 1_001) == 1_003, "the wall clock behind the calls")
        #expect(clock.next(wall: 1_010) == 1_010, "the wall clock again once it is ahead")
        #expect(clock.next(wall: 900) == 1_011, "a wall clock stepped back")
        #expect(clock.next(wall: 2_000) == 2_000)
    }
}

@Suite("Exhausted attempts")
struct ExhaustedAttemptsTests {
    @Test("a task whose every attempt was interrupted fails with the reason and a dead-letter copy")
    func exhausted() {
        var batch = TaskBatch(
            tasks: [BatchTask(
                message: TaskMessage(id: "a", type: "w", args: [], maxAttempts: 3, queuedAt: 0),
                position: TaskPosition(partition: 0, offset: 4))],
            markers: [], waitingPartitions: [], retry: RetryPolicy())
        #expect(batch.begun([.exhausted(attempts: 3)]).isEmpty)
        let record = batch.ran([], now: .now)
        #expect(record.outcomes.first?.payload == ExhaustedAttempts.reason(attempts: 3))
        #expect(record.outcomes.first?.kind == .failed && record.deadLetters.count == 1)
    }
}

@Suite("Attempt elsewhere")
struct AttemptElsewhereTests {
    let attempt = RunningAttempt(worker: "w1", startedAt: 100_000)

    func beat(at time: Int64, batch: Int64?, state: WorkerState = .busy, interval: Int64? = 5_000) -> Heartbeat {
        Heartbeat(
            lastHeartbeat: time, state: state, pid: 1, host: "h", startedAt: 0, intervalMilliseconds: interval,
            batchStartedAt: batch)
    }

    @Test("may still run while its worker beats with that batch, or one from before it")
    func stillRunning() {
        #expect(AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 103_000, batch: 100_000), now: 104_000))
        #expect(AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 99_000, batch: 90_000), now: 104_000))
        #expect(AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 99_000, batch: nil), now: 104_000))
        #expect(AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 99_000, batch: nil, interval: 60_000), now: 200_000))
    }

    @Test("over when its worker's heartbeat is stale, missing or stopped, or shows a later batch or none since")
    func over() {
        #expect(!AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 103_000, batch: 100_000), now: 113_001))
        #expect(!AttemptElsewhere.mayStillRun(attempt, heartbeat: nil, now: 104_000))
        #expect(!AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 103_000, batch: nil, state: .stopped), now: 104_000))
        #expect(!AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 103_000, batch: 101_000), now: 104_000))
        #expect(!AttemptElsewhere.mayStillRun(attempt, heartbeat: beat(at: 103_000, batch: nil), now: 104_000))
    }

    @Test("the other worker's heartbeat is fresh by its age on Redis's clock, not by this host's clock")
    func freshOnRedisClock() {
        var stamped = beat(at: 103_000, batch: 100_000)
        stamped.receivedAt = 7_000_000
        // This host's clock is a minute ahead of the other's: its heartbeat, 1 s old on
        // Redis's clock, is fresh, and its attempt may still run.
        #expect(!AttemptElsewhere.mayStillRun(attempt, heartbeat: stamped, now: 164_000), "judged on the hosts' clocks")
        #expect(AttemptElsewhere.mayStillRun(attempt, heartbeat: stamped, now: 164_000, redisNow: 7_001_000))
        // This host's clock is behind: 11 s of silence on Redis's clock is stale.
        #expect(AttemptElsewhere.mayStillRun(attempt, heartbeat: stamped, now: 90_000), "judged on the hosts' clocks")
        #expect(!AttemptElsewhere.mayStillRun(attempt, heartbeat: stamped, now: 90_000, redisNow: 7_011_000))
    }
}

@Suite("Held end markers")
struct HeldEndMarkersTests {
    @Test("a marker behind a waiting retry is held; the others are reached")
    func split() {
        let markers = [
            EndMarker(marker: "m", position: TaskPosition(partition: 0, offset: 3)),
            EndMarker(marker: "m", position: TaskPosition(partition: 1, offset: 8)),
        ]
        let split = HeldEndMarkers.split(markers, waitingPartitions: [1])
        #expect(split.reached == ["m": [0]])
        #expect(split.held == [markers[1]])
    }
}

@Suite("Awaited tasks")
struct AwaitedTasksTests {
    @Test("read at once, then every interval while not terminal; settled when terminal; dropped with their partition")
    func awaited() {
        let start = ContinuousClock.now
        var awaited = AwaitedTasks(interval: .seconds(2))
        #expect(awaited.takeCheck(now: start).isEmpty && awaited.nextCheck == nil)
        let a = [TaskPosition(partition: 0, offset: 4), TaskPosition(partition: 1, offset: 2)]
        awaited.await("a", at: a, now: start)
        awaited.await("b", at: [TaskPosition(partition: 1, offset: 7)], now: start)
        #expect(awaited.takeCheck(now: start) == ["a", "b"])
        #expect(awaited.takeCheck(now: start).isEmpty, "one reading at a time")
        #expect(awaited.checked(terminal: ["a"], now: start) == a)
        #expect(awaited.nextCheck == start + .seconds(2))
        #expect(awaited.takeCheck(now: start + .seconds(1)).isEmpty)
        #expect(awaited.takeCheck(now: start + .seconds(2)) == ["b"])
        awaited.await("c", at: [TaskPosition(partition: 2, offset: 0)], now: start + .seconds(3))
        #expect(awaited.nextCheck == start + .seconds(3), "a task awaited anew is read at once")
        awaited.forget(partitions: [1, 2])
        #expect(awaited.isEmpty && awaited.nextCheck == nil)
    }
}

@Suite("Redis outage")
struct RedisOutageTests {
    @Test("retries within the limit, gives up past it, starts over after a success")
    func limit() {
        var outage = RedisOutage(limit: .seconds(10))
        let start = ContinuousClock.now
        #expect(outage.failed(at: start) == .retry(after: RedisOutage.retryInterval))
        #expect(outage.failed(at: start + .milliseconds(9_800)) == .retry(after: .milliseconds(200)))
        #expect(outage.failed(at: start + .seconds(10)) == .giveUp)
        outage.succeeded()
        #expect(outage.failed(at: start + .seconds(30)) == .retry(after: RedisOutage.retryInterval))
    }

    @Test("a refusal every worker meets is waited out without a limit, and restarts the unreachable clock")
    func refusedToEveryClient() {
        var outage = RedisOutage(limit: .seconds(10))
        let start = ContinuousClock.now
        #expect(outage.failed(at: start) == .retry(after: RedisOutage.retryInterval))
        let full = RedisErrorReply("OOM command not allowed")
        #expect(outage.failed(at: start + .seconds(9), refusal: full) == .keepWaiting(after: RedisOutage.retryInterval))
        #expect(outage.failed(at: start + .seconds(600), refusal: full) == .keepWaiting(after: RedisOutage.retryInterval))
        #expect(outage.since == nil, "Redis answered: it was not unreachable")
        // Unreachable again: the limit counts from here, not from the first failure.
        #expect(outage.failed(at: start + .seconds(601)) == .retry(after: RedisOutage.retryInterval))
        #expect(outage.failed(at: start + .milliseconds(610_800)) == .retry(after: .milliseconds(200)))
        #expect(outage.failed(at: start + .seconds(611)) == .giveUp)
        outage.succeeded()
        #expect(outage.since == nil)
    }

    @Test("a stopping worker still retries within the limit, loading Redis included; it gives a full Redis up at once")
    func stopping() {
        let start = ContinuousClock.now
        var outage = RedisOutage(limit: .seconds(10))
        #expect(outage.failed(at: start, stopping: true) == .retry(after: RedisOutage.retryInterval))
        let loading = RedisErrorReply("LOADING Redis is loading the dataset in memory")
        #expect(outage.failed(at: start + .seconds(5), refusal: loading, stopping: true) == .retry(after: RedisOutage.retryInterval))
        #expect(outage.failed(at: start + .seconds(10), refusal: loading, stopping: true) == .giveUp, "loading counts as unreachable")
        outage.succeeded()
        let clusterDown = RedisErrorReply("CLUSTERDOWN The cluster is down")
        #expect(outage.failed(at: start + .seconds(20), refusal: clusterDown, stopping: true) == .retry(after: RedisOutage.retryInterval))
        outage.succeeded()
        // Waiting out a full Redis, then asked to stop: nothing but an operator ends it.
        let full = RedisErrorReply("OOM command not allowed")
        #expect(outage.failed(at: start + .seconds(30), refusal: full) == .keepWaiting(after: RedisOutage.retryInterval))
        #expect(outage.failed(at: start + .seconds(31), refusal: full, stopping: true) == .giveUp)
        #expect(outage.failed(at: start + .seconds(32), refusal: RedisErrorReply("MISCONF Errors writing"), stopping: true) == .giveUp)
    }

    @Test("a replica that does not acknowledge is waited out with the partitions kept, not counted as Redis unreachable")
    func replicaNotAcknowledging() throws {
        let error = RedisErrorReply.replicaNotAcknowledging(of: RedisURL.Node(host: "127.0.0.1", port: 7003), within: .seconds(2)).error("writes not yet on a replica")
        // The error carries only the text: its kind is read back from it, as the worker reads it.
        let reply = try #require(RedisErrorReply(in: error))
        #expect(reply.kind == .replicaNotAcknowledging)
        #expect(reply.isTransient && reply.refusesEveryClient)
        #expect(error.description.contains("127.0.0.1:7003"), "\(error)")
        let start = ContinuousClock.now
        var outage = RedisOutage(limit: .seconds(10))
        #expect(outage.failed(at: start, refusal: reply) == .keepWaiting(after: RedisOutage.retryInterval))
        #expect(outage.failed(at: start + .seconds(60), refusal: reply) == .keepWaiting(after: RedisOutage.retryInterval))
        // A stopping worker waits for it within the limit, as for Redis unreachable.
        #expect(outage.failed(at: start + .seconds(61), refusal: reply, stopping: true) == .retry(after: RedisOutage.retryInterval))
        #expect(outage.failed(at: start + .seconds(71), refusal: reply, stopping: true) == .giveUp)
    }

    @Test("which refusals every client meets: Redis's own state, not one client's settings")
    func whoseRefusal() {
        for message in ["OOM command not allowed", "MISCONF Errors writing", "LOADING Redis is loading", "BUSY running a script"] {
            #expect(RedisErrorReply(message).refusesEveryClient, "\(message)")
        }
        // A cluster down for this worker may be up for the others, across a network split.
        for message in ["NOAUTH Authentication required.", "WRONGPASS invalid", "NOPERM this user", "READONLY replica",
            "NOSCRIPT No matching script", "ERR something else", "CLUSTERDOWN The cluster is down", "TRYAGAIN Multiple keys"]
        {
            #expect(!RedisErrorReply(message).refusesEveryClient, "\(message)")
        }
        let refused = RedisErrorReply("OOM command not allowed").error("Redis script 'begin' failed")
        #expect(RedisErrorReply(in: refused)?.kind == .outOfMemory)
        let unreachable = YADTQError(.redis, "cannot connect", libraryCode: 1, libraryMessage: "Connection refused")
        #expect(RedisErrorReply(in: unreachable) == nil, "a transport failure carries no refusal")
        #expect(RedisErrorReply(in: YADTQError(.kafka, "x", libraryMessage: "OOM")) == nil)
    }
}

@Suite("Problem report")
struct ProblemReportTests {
    @Test("reported when it shows, when it changes and once per interval; its end is said only after a report")
    func rateLimited() {
        var report = ProblemReport(interval: .seconds(5))
        let start = ContinuousClock.now
        let clearedUnreported = report.cleared()
        #expect(!clearedUnreported, "nothing was reported: nothing to say is over")
        let seen: [(String, Duration)] = [
            ("full", .zero), ("full", .seconds(1)), ("full", .milliseconds(4_999)), ("full", .seconds(5)),
            ("gone", .seconds(6)), ("gone", .seconds(7)),
        ]
        let reported = seen.map { report.shouldReport($0.0, at: start + $0.1) }
        #expect(reported == [true, false, false, true, true, false], "a change is reported at once")
        let clearedOnce = report.cleared()
        let clearedTwice = report.cleared()
        #expect(clearedOnce && !clearedTwice)
        let again = report.shouldReport("gone", at: start + .seconds(8))
        #expect(again, "a new run of the same problem is reported again")
    }
}

@Suite("Group join wait")
struct GroupJoinWaitTests {
    @Test("warned once the wait passes its limit, then once per interval; its end is said only after a warning")
    func warnsLateOnly() {
        let start = ContinuousClock.now
        var wait = GroupJoinWait(group: "g1", since: start, warnAfter: .seconds(30), reportEvery: .seconds(60))
        let checks = [1, 29, 30, 31, 89, 90].map { wait.check(at: start + .seconds($0)) }
        #expect(checks == [nil, nil, .seconds(30), nil, nil, .seconds(90)])
        let ended = wait.assigned(at: start + .seconds(95))
        #expect(ended == .seconds(95), "a warned wait's end is said, with how long it was")

        var quick = GroupJoinWait(group: "g1", since: start + .seconds(300))
        let quickEnd = quick.assigned(at: start + .seconds(303))
        #expect(quickEnd == nil, "a short wait is not worth a line")
        var again = GroupJoinWait(group: "g1", since: start + .seconds(400))
        #expect(again.check(at: start + .seconds(431)) == .seconds(31), "a new join is warned about afresh")
    }

    @Test("the heartbeat says what the worker waits for: the broker, then its topic, then its group")
    func noteOrder() {
        let now = ContinuousClock.now
        var waits = WorkerWaits()
        #expect(waits.note(at: now) == nil)
        waits.group = GroupJoinWait(group: "g1", since: now - .milliseconds(42_300))
        waits.topic = "t"
        waits.broker = "127.0.0.1:9092"
        var notes = [waits.note(at: now)]
        waits.broker = nil
        notes.append(waits.note(at: now))
        waits.topic = nil
        notes.append(waits.note(at: now))
        waits.group = nil
        notes.append(waits.note(at: now))
        #expect(
            notes == [
                "waiting for the broker at 127.0.0.1:9092", "waiting for topic t to exist (yadtq-run --topic t creates it)",
                "waiting for group g1 to assign partitions (for 42.3s)", nil,
            ], "assigned (or out of the group): waiting for nothing")
    }
}

@Suite("Cancel watch")
struct CancelWatchTests {
    @Test("asks about running tasks only, and stops each cancelled attempt once")
    func stopsOnce() {
        var watch = CancelWatch()
        #expect(watch.check(running: []).isEmpty, "an idle worker asks nothing")
        let asked = watch.check(running: ["b", "a", "c"])
        #expect(asked == ["a", "b", "c"])
        #expect(watch.answered(["b", "elsewhere"], asked: asked) == ["b"])
        #expect(watch.check(running: ["a", "b", "c"]) == ["a", "c"], "b is being stopped: not asked again")
        #expect(watch.answered([], asked: ["a", "c"]).isEmpty)
        #expect(watch.check(running: ["a"]) == ["a"])
        #expect(watch.check(running: ["a", "b"]) == ["a", "b"], "b's stopped attempt has ended: a new one is watched again")
    }
}

@Suite("Stop signals")
struct StopSignalsTests {
    @Test("the first SIGTERM/SIGINT stops the worker cleanly; any later one ends it at once")
    func secondSignalExits() {
        var signals = StopSignals()
        #expect(signals.received() == .stopCleanly)
        #expect(signals.received() == .exitNow)
        #expect(signals.received() == .exitNow)
    }
}

@Suite("Broker outage")
struct BrokerOutageTests {
    @Test("a broker that cannot be reached or does not answer is waited for")
    func waitable() {
        // Broker transport failure, all brokers down, timed out, waiting for the coordinator,
        // leader or broker not available.
        for code: Int32 in [-195, -187, -185, -180, 5, 8] {
            #expect(BrokerOutage.isWaitable(libraryCode: code), "code \(code)")
            #expect(BrokerOutage.isWaitable(YADTQError(.kafka, "cannot read the metadata of topic t", libraryCode: code)))
        }
    }

    @Test("an error that waiting cannot mend ends the worker: an invalid topic, a refused authorisation, no code, not the broker's")
    func notWaitable() {
        // Invalid topic, topic and group authorisation failed, authentication failed.
        for code: Int32 in [17, 29, 30, -169] {
            #expect(!BrokerOutage.isWaitable(libraryCode: code), "code \(code)")
        }
        #expect(!BrokerOutage.isWaitable(YADTQError(.kafka, "topic t was created but the broker does not list it")))
        #expect(!BrokerOutage.isWaitable(YADTQError(.redis, "unreachable", libraryCode: -195)))
    }
}
