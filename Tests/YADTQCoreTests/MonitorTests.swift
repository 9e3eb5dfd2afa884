import Testing
import YADTQCore

/// A heartbeat written `age` ms before `now`, busy with a task started `running` ms before it.
private func beat(
    now: Int64 = 1_000_000, age: Int64 = 0, state: WorkerState = .idle, running: Int64? = nil,
    timeLimit: Int64? = 30_000, interval: Int64? = 5_000
) -> Heartbeat {
    Heartbeat(
        lastHeartbeat: now - age, state: state, currentTask: running == nil ? nil : "t1",
        taskStartedAt: running.map { now - $0 }, pid: 42, host: "box", startedAt: 0,
        timeLimitMilliseconds: timeLimit, intervalMilliseconds: interval)
}

@Suite("Monitor: liveness rules")
struct MonitorLivenessRulesTests {
    let rules = LivenessRules(deadAfter: .seconds(10))
    let now: Int64 = 1_000_000

    @Test("a fresh heartbeat is ALIVE, idle or busy within the limit")
    func alive() {
        #expect(rules.judge(beat(age: 100), at: now) == WorkerJudgement(.alive))
        #expect(rules.judge(beat(age: 9_999, state: .busy, running: 20_000), at: now).verdict == .alive)
    }

    @Test("DEAD once the last heartbeat is older than dead-after, not at exactly dead-after")
    func dead() {
        #expect(rules.judge(beat(age: 10_000), at: now).verdict == .alive)
        let judgement = rules.judge(beat(age: 12_000), at: now)
        #expect(judgement.verdict == .dead)
        #expect(judgement.reason == "no heartbeat for 12s (dead after 10s)")
    }

    @Test("a worker beating more slowly than dead-after is DEAD only after two of its own intervals")
    func slowHeartbeat() {
        func slow(_ age: Int64) -> WorkerJudgement { rules.judge(beat(age: age, interval: 15_000), at: now) }
        #expect(slow(12_000).verdict == .alive)
        #expect(slow(30_000).verdict == .alive)
        let judgement = slow(31_000)
        #expect(judgement.verdict == .dead)
        #expect(judgement.reason == "no heartbeat for 31s (dead after 30s: twice its 15s heartbeat interval)")
        #expect(rules.judge(beat(age: 12_000, interval: nil), at: now).verdict == .dead, "no interval reported: dead-after alone")
    }

    @Test("a stopped worker is DEAD at once, with the reason that it stopped")
    func stopped() {
        #expect(rules.judge(beat(age: 0, state: .stopped), at: now) == WorkerJudgement(.dead, reason: "stopped"))
    }

    @Test("STUCK when the task outruns its time limit plus one heartbeat interval")
    func stuckFromHeartbeatLimit() {
        // Limit 30 s + interval 5 s: the worker has had a whole beat to report the kill.
        #expect(rules.judge(beat(state: .busy, running: 35_000), at: now).verdict == .alive)
        let judgement = rules.judge(beat(state: .busy, running: 35_001), at: now)
        #expect(judgement.verdict == .stuck)
        #expect(judgement.reason == "task t1 running for 35s (stuck after 35s)")
    }

    @Test("--stuck-after overrides the heartbeat's limit, also for workers that do not report one")
    func stuckOverride() {
        let strict = LivenessRules(deadAfter: .seconds(10), stuckAfter: .seconds(2))
        #expect(strict.judge(beat(state: .busy, running: 2_500), at: now).verdict == .stuck)
        #expect(strict.judge(beat(state: .busy, running: 2_500, timeLimit: nil), at: now).verdict == .stuck)
        #expect(rules.judge(beat(state: .busy, running: 999_000, timeLimit: nil), at: now).verdict == .alive)
    }

    @Test("a silent worker is DEAD even when its last beat showed an overrun task")
    func deadBeatsStuck() {
        #expect(rules.judge(beat(age: 11_000, state: .busy, running: 60_000), at: now).verdict == .dead)
    }

    @Test("an idle worker with a stale task start is not STUCK")
    func idleIsNeverStuck() {
        #expect(rules.judge(beat(state: .idle, running: 60_000), at: now).verdict == .alive)
    }

    @Test("a heartbeat from a clock ahead of the monitor's counts as fresh")
    func clockSkew() {
        #expect(rules.judge(beat(age: -3_000), at: now).verdict == .alive)
    }

    @Test("a heartbeat Redis stamped is judged by its age on Redis's clock, whatever the worker's host's clock says")
    func judgedOnRedisClock() {
        // Redis's clock reads 5,000,000 as the monitor reads; the monitor's own says `now`.
        let redisNow: Int64 = 5_000_000
        func stamped(_ heartbeat: Heartbeat, receivedAgo: Int64) -> Heartbeat {
            var heartbeat = heartbeat
            heartbeat.receivedAt = redisNow - receivedAgo
            return heartbeat
        }
        // A host two minutes behind, beating 1 s ago: ALIVE, not DEAD for 2 minutes of silence.
        let behind = stamped(beat(age: 120_000, state: .busy, running: 121_000), receivedAgo: 1_000)
        #expect(rules.judge(behind, at: now).verdict == .dead, "judged on the hosts' clocks")
        let clock = behind.clock(at: now, redisNow: redisNow)
        #expect(clock == behind.lastHeartbeat + 1_000)
        #expect(rules.judge(behind, at: clock) == WorkerJudgement(.alive))
        // ... and its task's 2 s of running are not taken for 2 minutes past its 30 s limit.
        #expect(rules.judge(stamped(beat(age: 120_000, state: .busy, running: 122_000), receivedAgo: 1_000), at: clock).verdict
            == .alive)
        // A host a minute ahead, silent for 30 s on Redis's clock: DEAD, not fresh.
        let ahead = stamped(beat(age: -60_000), receivedAgo: 30_000)
        #expect(rules.judge(ahead, at: now).verdict == .alive, "judged on the hosts' clocks")
        let judgement = rules.judge(ahead, at: ahead.clock(at: now, redisNow: redisNow))
        #expect(judgement == WorkerJudgement(.dead, reason: "no heartbeat for 30s (dead after 10s)"))
        // An entry Redis did not stamp (an older worker), or a read without Redis's time: the hosts' clocks.
        #expect(beat(age: 120_000).clock(at: now, redisNow: redisNow) == now)
        #expect(behind.clock(at: now, redisNow: nil) == now)
    }
}

@Suite("Monitor: heartbeat document")
struct MonitorHeartbeatTests {
    @Test("encodes every field DESIGN.md names and decodes back to the same value")
    func roundTrip() throws {
        let original = Heartbeat(
            lastHeartbeat: 1_700_000_000_123, state: .busy, currentTask: "task-7", taskStartedAt: 1_700_000_000_000,
            processed: 12, failed: 3, partitions: [0, 2], pid: 4242, host: "box", startedAt: 1_699_999_000_000,
            timeLimitMilliseconds: 30_000, intervalMilliseconds: 5_000)
        let fields = try #require(original.json.objectValue)
        #expect(
            Set(fields.keys) == [
                "last_heartbeat", "state", "current_task", "task_started_at", "processed", "failed", "partitions",
                "pid", "host", "started_at", "time_limit_ms", "interval_ms",
            ])
        #expect(try Heartbeat(parsing: original.json.jsonString) == original)
        #expect(try Heartbeat(document: original.json) == original)
    }

    @Test("a worker's entry as read from Redis gives its heartbeat, or none when the document is not one")
    func workerEntry() {
        let original = beat()
        #expect(TaskStore.WorkerHeartbeat(name: "w", document: original.json).heartbeat == original)
        #expect(TaskStore.WorkerHeartbeat(name: "w", document: ["state": "idle"]).heartbeat == nil)
        #expect(TaskStore.WorkerHeartbeat(name: "w", document: nil).heartbeat == nil)
    }

    @Test("an idle worker stores null for its task, and a document without the optional fields still decodes")
    func minimalDocument() throws {
        let heartbeat = try Heartbeat(parsing: #"{"last_heartbeat": 5, "state": "idle", "current_task": null}"#)
        #expect(heartbeat.lastHeartbeat == 5)
        #expect(heartbeat.state == .idle)
        #expect(heartbeat.currentTask == nil)
        #expect(heartbeat.processed == 0)
        #expect(heartbeat.partitions == [])
        #expect(heartbeat.timeLimitMilliseconds == nil)
        #expect(beat().json["current_task"] == .null)
    }

    @Test("an unreadable document says why", arguments: [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        (#"{"state": "idle"}"#, "no integer last_heartbeat"),
        (#"{"last_heartbeat": 1, "state": "napping"}"#, "state is not one of idle, busy, waiting, stopped"),
    ])
    func unreadable(text: String, reason: String) {
        #expect {
            try Heartbeat(parsing: text)
        } throws: { error in
            (error as? HeartbeatDecodingError)?.reason.hasPrefix(reason) == true
        }
    }
}

@Suite("Monitor: run completion")
struct MonitorRunCompletionTests {
    /// Feeds `steps` (drained marker, every worker gone) to a fresh ``RunCompletion``;
    /// returns its answer after each.
    func answers(_ steps: [(String?, Bool)]) -> [Bool] {
        var completion = RunCompletion()
        return steps.map { completion.isFinished(drainedMarker: $0.0, everyWorkerGone: $0.1) }
    }

    @Test("finished once a new marker is drained and every worker is DEAD or stopped")
    func finishes() {
        #expect(answers([(nil, false), (nil, false), ("m1", false), ("m1", true)]) == [false, false, false, true])
        #expect(answers([(nil, true), (nil, true)]) == [false, false], "no marker, no end, even with no worker")
    }

    @Test("a marker already drained when the monitor started belongs to an earlier run")
    func staleMarker() {
        #expect(answers([("old", true), ("old", true), (nil, true), ("new", true)]) == [false, false, false, true])
    }

    @Test("every worker is gone when each one is DEAD; STUCK and ALIVE are still running")
    func everyWorkerGone() {
        func snapshot(_ verdicts: [WorkerVerdict]) -> FleetSnapshot {
            FleetSnapshot(
                at: 0, namespace: "ns", topic: "t",
                workers: verdicts.enumerated().map { index, verdict in
                    WorkerReport(name: "w\(index)", heartbeat: beat(), judgement: WorkerJudgement(verdict))
                },
                counts: [:], tasksPerSecond: 0, rateWindowSeconds: 1, orphaned: [], orphanCount: 0, orphanScanLimit: 10,
                endOfStream: nil, changes: [])
        }
        #expect(snapshot([.dead, .dead]).everyWorkerGone)
        #expect(!snapshot([.dead, .stuck]).everyWorkerGone)
        #expect(!snapshot([.alive]).everyWorkerGone)
    }
}

@Suite("Monitor: rendering")
struct MonitorRenderingTests {
    let now: Int64 = 1_717_243_205_123

    var snapshot: FleetSnapshot {
        let rules = LivenessRules(deadAfter: .seconds(10))
        let busy = beat(now: now, age: 400, state: .busy, running: 3_100)
        var withCounts = busy
        withCounts.processed = 120
        withCounts.failed = 2
        withCounts.partitions = [1, 0]
        let silent = beat(now: now, age: 14_000, state: .busy, running: 20_000)
        return FleetSnapshot(
            at: now, namespace: "yadtq", topic: "tasks",
            workers: [
                WorkerReport(name: "w1", heartbeat: withCounts, judgement: rules.judge(withCounts, at: now)),
                WorkerReport(name: "w2", heartbeat: silent, judgement: rules.judge(silent, at: now)),
            ],
            problems: ["w3: unreadable heartbeat: not a JSON object"],
            counts: [.queued: 10, .processing: 3, .success: 950, .failed: 2, .cancelled: 4], tasksPerSecond: 12.44,
            rateWindowSeconds: 5, orphaned: [OrphanedTask(id: "task-30", worker: "w2")], orphanCount: 1,
            orphanScanLimit: 10_000,
            endOfStream: nil,
            changes: [VerdictChange(worker: "w2", from: .alive, to: .dead, reason: "no heartbeat for 14s", at: now)])
    }

    @Test("the table shows each worker's row, the queue, orphans and the end marker")
    func table() throws {
        // Blank lines are left out, so the indices count only lines with text.
        let lines = FleetTable.render(snapshot).split(separator: "\n").map(String.init)
        #expect(lines[0] == "YADTQ monitor · namespace yadtq · topic tasks · 2024-06-01T12:00:05.123Z")
        #expect(lines[1].hasPrefix("WORKER  VERDICT  HEARTBEAT  STATE  TASK  RUNNING  PROCESSED  FAILED  PARTITIONS"))
        #expect(lines[2].hasPrefix("w1      ALIVE    400ms ago  busy   t1    3.1s           120       2  0,1"))
        #expect(lines[3].hasPrefix("w2      DEAD     14s ago    busy   t1    -               "))
        #expect(lines[3].hasSuffix("no heartbeat for 14s (dead after 10s)"))
        #expect(lines.contains("! w3: unreadable heartbeat: not a JSON object"))
        // Every status has its count (see everyStatusIsCounted), so a status added later shows too.
        let queue = try #require(lines.first { $0.hasPrefix("QUEUE     ") })
        #expect(queue.contains("QUEUED 10 · PROCESSING 3 · SUCCESS 950 · FAILED 2 · CANCELLED 4 · "), "\(queue)")
        #expect(queue.hasSuffix(" · total 969 · 12.4 tasks/s (last 5s)"), "\(queue)")
        #expect(lines.contains("ORPHANED  1: task-30 (w2), to be redelivered by Kafka"))
        #expect(!lines.contains("CHANGES"), "changes are listed only when the caller passes them")
    }

    /// Whatever statuses a task may have, the table and the JSON show a count for each, in the
    /// order of the task's life, and zero for a status no task is in.
    @Test("a worker's lag adds up its partitions of the topic and group read, and is unknown for a worker of another")
    func lagPerWorker() {
        var snapshot = snapshot
        snapshot.lag = [
            PartitionLag(topic: "tasks", partition: 0, committed: 10, start: 0, end: 15),
            PartitionLag(topic: "tasks", partition: 1, committed: 0, start: 0, end: 7),
        ]
        snapshot.lagGroup = "g"
        func report(topic: String?, group: String?, partitions: [Int32]) -> WorkerReport {
            var heartbeat = beat()
            heartbeat.topic = topic
            heartbeat.group = group
            heartbeat.partitions = partitions
            return WorkerReport(name: "w", heartbeat: heartbeat, judgement: WorkerJudgement(.alive))
        }
        #expect(snapshot.lag(of: report(topic: "tasks", group: "g", partitions: [0, 1])) == 12)
        #expect(snapshot.lag(of: report(topic: "tasks", group: "g", partitions: [1])) == 7)
        #expect(snapshot.lag(of: report(topic: nil, group: nil, partitions: [0])) == 5, "a heartbeat that names neither")
        #expect(snapshot.lag(of: report(topic: "other", group: "g", partitions: [0, 1])) == nil)
        #expect(snapshot.lag(of: report(topic: "tasks", group: "h", partitions: [0, 1])) == nil)
    }

    @Test("the table and the JSON count every task status, CANCELLED included")
    func everyStatusIsCounted() throws {
        var counted = snapshot
        counted.counts = Dictionary(uniqueKeysWithValues: TaskStatus.allCases.enumerated().map { ($1, 100 + $0) })
        counted.counts[.processing] = nil  // no task in it: shown as 0
        let expected = TaskStatus.allCases.map { "\($0.rawValue) \(counted.counts[$0] ?? 0)" }.joined(separator: " · ")
        let total = counted.counts.values.reduce(0, +)
        let queue = try #require(FleetTable.render(counted).split(separator: "\n").first { $0.hasPrefix("QUEUE ") })
        #expect(queue.hasPrefix("QUEUE     \(expected) · total \(total) · "), "\(queue)")
        let document = try JSONValue(parsing: counted.json.jsonString)
        #expect(document["queue"]?.objectValue?.keys.sorted() == (TaskStatus.allCases.map(\.rawValue) + ["total"]).sorted())
        for status in TaskStatus.allCases {
            #expect(document["queue"]?[status.rawValue] == .int(Int64(counted.counts[status] ?? 0)), "\(status)")
        }
        #expect(document["queue"]?["total"] == .int(Int64(total)))
    }

    @Test("the live screen lists the recent verdict changes with their timestamps")
    func changes() {
        let text = FleetTable.render(snapshot, recentChanges: snapshot.changes)
        #expect(text.hasSuffix("CHANGES\n  2024-06-01T12:00:05.123Z w2 ALIVE -> DEAD: no heartbeat for 14s\n"))
    }

    @Test("the JSON snapshot carries each heartbeat as stored plus the verdict")
    func json() throws {
        let document = try JSONValue(parsing: snapshot.json.jsonString)
        let w1 = try #require(document["workers"]?[0])
        #expect(w1["name"] == "w1")
        #expect(w1["verdict"] == "ALIVE")
        #expect(w1["heartbeat_age_ms"] == 400)
        #expect(w1["task_running_ms"] == 3_100)
        #expect(w1["processed"] == 120)
        #expect(w1["partitions"] == [1, 0])
        #expect(document["workers"]?[1]?["task_running_ms"] == .null, "a DEAD worker's task is not running")
        for (status, count) in ["QUEUED": 10, "PROCESSING": 3, "SUCCESS": 950, "FAILED": 2, "CANCELLED": 4, "total": 969] {
            #expect(document["queue"]?[status] == .int(Int64(count)), "\(status)")
        }
        #expect(document["orphaned"] == [["id": "task-30", "worker": "w2"]])
        #expect(document["orphaned_count"] == 1)
        #expect(document["end_of_stream"] == .null)
        #expect(document["changes"]?[0]?["from"] == "ALIVE")
        #expect(document["changes"]?[0]?["to"] == "DEAD")
    }
}

@Suite("Verdict log")
struct VerdictLogTests {
    @Test("a change found again because it was not stored is logged once; a change to another verdict is logged")
    func once() {
        var log = VerdictLog()
        let dead = VerdictChange(worker: "w1", from: .alive, to: .dead, reason: "no heartbeat", at: 1)
        let alive = VerdictChange(worker: "w1", from: .dead, to: .alive, reason: "", at: 3)
        let other = VerdictChange(worker: "w2", from: nil, to: .alive, reason: "", at: 1)
        #expect(log.toLog([dead, other]) == [dead, other])
        #expect(log.toLog([dead]).isEmpty, "the same change again (Redis still holds ALIVE): not logged twice")
        #expect(log.toLog([alive]) == [alive], "back to ALIVE is a change")
        #expect(log.toLog([dead]) == [dead], "and DEAD again is one too")
    }
}
