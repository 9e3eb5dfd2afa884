import Foundation
import Testing
import YADTQCore

/// `yadtq-ctl`, the outside view of a task, and what Redis keeps of finished tasks.
@Suite("Control and retention", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct ControlTests {
    /// The fields DESIGN.md fixes for the outside view of a task.
    static let outsideFields: Set<String> = [
        "id", "status", "type", "args", "result", "error", "errors", "attempts", "max_attempts", "worker",
        "queued_at", "started_at", "finished_at",
    ]

    @Test("status and ls --json give one outside view per line; an unknown id exits 1")
    func statusAndList() throws {
        let stack = try IntegrationStack(label: "ctl")
        let worker = try stack.startWorker("w1", arguments: ["--retry-delay", "10ms"])
        let first = """
            {"id": "sum", "type": "add", "args": [2, 3]}
            {"id": "text", "type": "concat", "args": ["a", "b"]}
            """
        _ = try stack.run(input: first + "\n", arguments: ["--wait"])
        // Queued later, so listed first.
        _ = try stack.run(input: #"{"id": "boom", "type": "div", "args": [1, 0], "max_attempts": 2}"# + "\nend\n", arguments: ["--wait"])
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0)

        let status = try stack.ctl(["status", "sum", "boom", "--json"])
        #expect(status.status == 0, "\(status.stderr)")
        let lines = status.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        let views = try lines.map { try JSONValue(parsing: $0) }
        for view in views { #expect(Set(view.objectValue?.keys.map { $0 } ?? []) == Self.outsideFields, "\(view)") }
        #expect(views[0]["id"] == "sum")
        #expect(views[0]["status"] == "SUCCESS")
        #expect(views[0]["args"] == [2, 3])
        #expect(views[0]["result"] == 5)
        #expect(views[0]["error"] == .null)
        #expect(views[0]["attempts"] == 1)
        #expect(views[0]["worker"] == "w1")
        let queued = try #require(views[0]["queued_at"]?.intValue)
        let started = try #require(views[0]["started_at"]?.intValue)
        let finished = try #require(views[0]["finished_at"]?.intValue)
        #expect(queued <= started && started <= finished && finished <= currentEpochMilliseconds())
        #expect(views[1]["status"] == "FAILED")
        #expect(views[1]["attempts"] == 2 && views[1]["max_attempts"] == 2)
        #expect(views[1]["result"] == .null)
        #expect(views[1]["error"]?.stringValue?.contains("division by zero") == true)
        #expect(views[1]["errors"]?.arrayValue?.compactMap { $0["attempt"]?.intValue } == [1, 2])

        let unknown = try stack.ctl(["status", "sum", "never-queued", "--json"])
        #expect(unknown.status == 1)
        #expect(unknown.stdout.split(separator: "\n").count == 1, "the known id is still printed")
        #expect(unknown.stderr.contains("no task with id 'never-queued'"), "\(unknown.stderr)")

        let failed = try stack.ctl(["ls", "--status", "failed", "--json"])
        #expect(failed.status == 0, "\(failed.stderr)")
        #expect(try failed.stdout.split(separator: "\n").map { try JSONValue(parsing: String($0))["id"] } == ["boom"])
        let newest = try stack.ctl(["ls", "--limit", "2", "--json"])
        let newestIds = try newest.stdout.split(separator: "\n").map { try JSONValue(parsing: String($0))["id"]?.stringValue }
        #expect(newestIds.count == 2 && newestIds.first == "boom", "newest first, at most --limit: \(newestIds)")
        let ofType = try stack.ctl(["ls", "--type", "add"])
        #expect(ofType.stdout.hasPrefix("TASK "), "a header for people")
        #expect(ofType.stdout.contains("sum") && !ofType.stdout.contains("text"))
        let badStatus = try stack.ctl(["ls", "--status", "DONE"])
        #expect(badStatus.status != 0)
        #expect(badStatus.stderr.contains("--status"), "\(badStatus.stderr)")
    }

    @Test("status shows an unknown id with its control characters escaped, as cancel and retry do")
    func unknownIDIsEscaped() throws {
        let stack = try IntegrationStack(label: "ctl-escape")
        let status = try stack.ctl(["status", "x\u{1B}[2J"])
        #expect(status.status == 1)
        #expect(status.stderr.contains(#"no task with id 'x\e[2J'"#), "\(status.stderr)")
        #expect(!status.stderr.contains("\u{1B}"), "no raw ESC reaches the terminal")
    }

    @Test("a task id that starts with '-' goes after '--'; before it, the error says so; options and their typos still work")
    func dashedIDs() throws {
        let stack = try IntegrationStack(label: "ctl-dash")
        #expect(try stack.run(input: #"{"id": "-x", "type": "add", "args": [1, 2]}"# + "\n").status == 0)
        for subcommand in ["status", "cancel", "retry"] {
            let refused = try stack.ctl([subcommand, "-x"])
            #expect(refused.status != 0)
            #expect(
                refused.stderr.contains(
                    "'-x' is not an option of yadtq-ctl \(subcommand); a task id that starts with '-' goes after '--': "
                        + "yadtq-ctl \(subcommand) -- -x"), "\(refused.stderr)")
            #expect(refused.stderr.contains("yadtq-ctl \(subcommand) --help"), "the usage lines stay: \(refused.stderr)")
        }
        let typo = try stack.ctl(["status", "--jsn", "-x"])
        #expect(typo.status != 0)
        #expect(
            typo.stderr.contains(
                "'--jsn' and '-x' are not options of yadtq-ctl status (did you mean '--json' for '--jsn'?); "
                    + "task ids that start with '-' go after '--': yadtq-ctl status -- --jsn -x"), "\(typo.stderr)")

        let shown = try stack.ctl(["status", "--json", "--", "-x"])
        #expect(shown.status == 0, "\(shown.stderr)")
        let view = try JSONValue(parsing: shown.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(view["id"] == "-x" && view["status"] == "QUEUED", "\(view)")
        let cancelled = try stack.ctl(["cancel", "--", "-x"])
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        #expect(cancelled.stdout.contains("-x: QUEUED -> CANCELLED"), "\(cancelled.stdout)")
        #expect(try stack.store.record(id: "-x")?.status == .cancelled)
    }

    @Test("finished tasks expire after --keep-succeeded / --keep-failed with their index entries and counts")
    func retention() throws {
        let stack = try IntegrationStack(label: "keep")
        let worker = try stack.startWorker(
            "w1", arguments: ["--keep-succeeded", "4s", "--keep-failed", "12s", "--heartbeat-interval", "500ms"])
        let lines = (0..<50).map { "add \($0) 1" } + [#"{"id": "bad", "type": "fail", "args": [], "max_attempts": 1}"#]
        let run = try stack.run(input: lines.joined(separator: "\n") + "\n", arguments: ["--wait"])
        let ids = run.stdout.split(separator: "\n").map(String.init)
        #expect(ids.count == 51)
        let store = stack.store
        #expect(try store.counts()[.success] == 50, "right after the run, every task is still kept")
        #expect(try store.record(id: "bad")?.status == .failed)

        // After 4 s (plus a heartbeat that prunes) the successes are gone, the failure kept.
        let deadline = ContinuousClock.now + .seconds(15)
        while try store.counts()[.success] != 0, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 0, .failed: 1, .cancelled: 0])
        let status = try stack.ctl(["status", ids[0]])
        #expect(status.status == 1 && status.stderr.contains("expired"), "\(status.stderr)")
        #expect(try store.typeCounts(["add", "fail"]) == ["add": 0, "fail": 1])
        let listed = try stack.ctl(["ls", "--json"])
        #expect(try listed.stdout.split(separator: "\n").map { try JSONValue(parsing: String($0))["id"] } == ["bad"])

        while try store.counts()[.failed] != 0, ContinuousClock.now < deadline + .seconds(15) {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(try store.counts()[.failed] == 0)
        #expect(try store.taskPage(status: .failed, type: nil, cursor: nil, limit: 10).records.isEmpty)
        // What is left under the namespace is bounded whatever the volume: no record, no
        // listing or expiry bucket, no index member, no count of a type with no task kept.
        let left = try redisKeys(stack)
        #expect(!left.isEmpty, "the heartbeats and counters are still there")
        for key in left
        where ["records", "bucket", "live", "expiring", "index:", "running", "types"].contains(where: { key.contains($0) }) {
            Issue.record("an emptied record hash or index is still there: \(key)")
        }
        // The same id may be queued again once the first one is gone.
        let again = try stack.run(input: #"{"id": "bad", "type": "add", "args": [1, 1]}"# + "\n" + "end\n", arguments: ["--wait"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try stack.records(["bad"]).first??.result == 2)
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0)
    }

    @Test("a replayed begin or finish (a pipeline sent again after a broken connection) counts nothing twice")
    func replayedScriptsAreIdempotent() throws {
        let stack = try IntegrationStack(label: "replay")
        let store = stack.store
        let message = TaskMessage(id: "again", type: "add", args: [1, 2], maxAttempts: 3, queuedAt: 1000)
        #expect(try store.queue([message]) == [.queued])
        #expect(try store.queue([message]) == [.queued], "the same queue call again is its own echo")
        let now: Int64 = 2000
        #expect(try store.begin([message], partitions: [0], worker: "w1", at: now) == [.run(attempt: 1)])
        #expect(try store.begin([message], partitions: [0], worker: "w1", at: now) == [.run(attempt: 1)])
        let retry = AttemptOutcome(id: "again", attempt: 1, kind: .retry, payload: "flaky", logs: ["once"])
        #expect(try store.finish([retry], worker: "w1", begunAt: now, at: 2100) == [true])
        #expect(try store.finish([retry], worker: "w1", begunAt: now, at: 2100) == [true])
        var record = try #require(try store.record(id: "again"))
        #expect(record.errors.count == 1, "\(record.errors)")
        #expect(record.logs == ["once"])
        #expect(try store.begin([message], partitions: [0], worker: "w1", at: 2200) == [.run(attempt: 2)])
        let success = AttemptOutcome(id: "again", attempt: 2, kind: .success, payload: "3")
        #expect(try store.finish([success], worker: "w1", begunAt: 2200, at: 2300) == [true])
        #expect(try store.finish([success], worker: "w1", begunAt: 2200, at: 2300) == [true])
        #expect(try store.finish([success], worker: "w2", begunAt: 2200, at: 2400) == [false], "another writer is still refused")
        record = try #require(try store.record(id: "again"))
        #expect(record.attempts == 2)
        #expect(try store.counts()[.success] == 1)
    }

    @Test("a task failed again soon after an operator's retry is pruned once: its counts and its second's other tasks stay right")
    func taskListedTwiceForExpiryIsPrunedOnce() throws {
        let stack = try IntegrationStack(label: "prune-once")
        let store = stack.store
        let at = currentEpochMilliseconds()
        // Both in one listing second: `kept` stays QUEUED and must stay listed.
        let tasks = ["twice", "kept"].map { TaskMessage(id: $0, type: "add", args: [1], maxAttempts: 1, queuedAt: at) }
        #expect(try store.queue(tasks) == [.queued, .queued])
        // FAILED, queued again by an operator, FAILED again: listed twice to expire.
        for round in Int64(0)..<2 {
            let begun = at + 100 * round + 10
            #expect(try store.begin([tasks[0]], partitions: [0], worker: "w1", at: begun) == [.run(attempt: 1)])
            let outcome = AttemptOutcome(id: "twice", attempt: 1, kind: .failed, payload: "no")
            #expect(try store.finish([outcome], worker: "w1", begunAt: begun, at: begun + 10) == [true])
            if round == 0 { #expect(try store.requeue(["twice"], at: begun + 20) == [.requeued]) }
        }
        // Both expiry entries are due in one prune.
        while try store.prune(at: at + 30 * 86_400_000) > 0 {}
        #expect(try store.record(id: "twice") == nil)
        try expectOnlyKeptLeft(store)
    }

    @Test("purge deletes and counts once a task queued again under its id after it was deleted")
    func purgeCountsATaskQueuedAgainOnce() throws {
        let stack = try IntegrationStack(label: "purge-once")
        let store = stack.store
        let at = currentEpochMilliseconds() - 10_000
        func succeed(_ task: TaskMessage, at begun: Int64) throws {
            #expect(try store.begin([task], partitions: [0], worker: "w1", at: begun) == [.run(attempt: 1)])
            let outcome = AttemptOutcome(id: task.id, attempt: 1, kind: .success, payload: "1")
            #expect(try store.finish([outcome], worker: "w1", begunAt: begun, at: begun + 10) == [true])
        }
        // `kept` stays QUEUED, so the first second's listing keeps the id purged from it.
        let first = ["again", "kept"].map { TaskMessage(id: $0, type: "add", args: [1], maxAttempts: 1, queuedAt: at) }
        #expect(try store.queue(first) == [.queued, .queued])
        try succeed(first[0], at: at + 10)
        #expect(try store.purge(status: .success, type: nil, finishedBy: nil) == ["again"])
        let second = TaskMessage(id: "again", type: "add", args: [2], maxAttempts: 1, queuedAt: at + 5_000)
        #expect(try store.queue([second]) == [.queued])
        try succeed(second, at: at + 5_010)
        let purge = try stack.ctl(["purge", "--status", "success", "--yes"])
        #expect(purge.stdout == "deleted 1 SUCCESS tasks\n", "\(purge.stdout)")
        try expectOnlyKeptLeft(store)
    }

    @Test(
        "a task purged before its offset was committed, its message delivered again: queued again in its old second, it is listed once",
        arguments: [Int64(2_000), 60_000])
    func redeliveredAfterPurgeListedOnce(age: Int64) throws {
        let stack = try IntegrationStack(label: "relist")
        let store = stack.store
        let at = currentEpochMilliseconds() - age
        let tasks = ["again", "kept"].map { TaskMessage(id: $0, type: "add", args: [1], maxAttempts: 1, queuedAt: at) }
        #expect(try store.queue(tasks) == [.queued, .queued])
        #expect(try store.begin([tasks[0]], partitions: [0], worker: "w1", at: at + 10) == [.run(attempt: 1)])
        let outcome = AttemptOutcome(id: "again", attempt: 1, kind: .success, payload: "1")
        #expect(try store.finish([outcome], worker: "w1", begunAt: at + 10, at: at + 20) == [true])
        #expect(try store.purge(status: .success, type: nil, finishedBy: nil) == ["again"])
        // Its worker died before committing the offset: the message comes back, and begin
        // queues the task again from it, with its queued_at, in the second `kept` still lists.
        #expect(try store.begin([tasks[0]], partitions: [0], worker: "w2", at: at + 30) == [.run(attempt: 1)])
        let listed = try store.taskPage(status: nil, type: nil, cursor: nil, limit: 10).records.map(\.id)
        #expect(listed.sorted() == ["again", "kept"], "each task once: \(listed)")
        let counts = try store.counts()
        #expect(counts[.queued] == 1 && counts[.processing] == 1, "\(counts)")
    }

    @Test("a queue call naming an id twice answers the same when replayed: the second copy a duplicate, a task due later not published")
    func queueReplayedWithAnIDTwice() throws {
        let stack = try IntegrationStack(label: "queue-twice")
        let store = stack.store
        let now = currentEpochMilliseconds()
        let tasks = ["q1", "q2", "q1"].map { TaskMessage(id: $0, type: "add", args: [1], maxAttempts: 1, queuedAt: now) }
        for call in 1...2 { #expect(try store.queue(tasks) == [.queued, .queued, .duplicate], "call \(call)") }
        let later = TaskMessage(id: "q3", type: "add", args: [1], maxAttempts: 1, queuedAt: now)
        for call in 1...2 {
            #expect(try store.queue([later, later], dueAt: [now + 3_600_000, 0]) == [.scheduled, .duplicate], "call \(call)")
        }
        #expect(try store.counts()[.scheduled] == 1)
    }

    /// Only the task `kept` is left, QUEUED: counted once, and still listed.
    private func expectOnlyKeptLeft(_ store: TaskStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let counts = try store.counts()
        #expect(counts == [.scheduled: 0, .queued: 1, .processing: 0, .success: 0, .failed: 0, .cancelled: 0], sourceLocation: sourceLocation)
        #expect(try store.typeCounts(["add"]) == ["add": 1], sourceLocation: sourceLocation)
        let listed = try store.taskPage(status: nil, type: nil, cursor: nil, limit: 10).records.map(\.id)
        #expect(listed == ["kept"], sourceLocation: sourceLocation)
    }

    @Test("stats gives the finishing rate of the last 60 seconds, not of the clock minute so far")
    func statsRateCoversTheLastMinute() throws {
        let stack = try IntegrationStack(label: "rate")
        let store = stack.store
        // Between 5 s and 50 s into a minute, so that 2 s before it began is within the last minute.
        while !(5_000..<50_000).contains(currentEpochMilliseconds() % 60_000) { Thread.sleep(forTimeInterval: 0.5) }
        let now = currentEpochMilliseconds()
        let finished = now - now % 60_000 - 2_000
        let tasks = (0..<30).map { TaskMessage(id: "r\($0)", type: "add", args: [1], maxAttempts: 1, queuedAt: finished - 100) }
        #expect(try store.queue(tasks).allSatisfy { $0 == .queued })
        _ = try store.begin(tasks, partitions: tasks.map { _ in 0 }, worker: "w1", at: finished - 50)
        let outcomes = tasks.map { AttemptOutcome(id: $0.id, attempt: 1, kind: .success, payload: "1") }
        #expect(try store.finish(outcomes, worker: "w1", begunAt: finished - 50, at: finished).allSatisfy { $0 })
        let stats = try stack.ctl(["stats", "--json"])
        #expect(stats.status == 0, "\(stats.stderr)")
        let rate = try JSONValue(parsing: stats.stdout)["finished_per_second"]?.doubleValue
        #expect(rate == 0.5, "30 tasks in the last 60 s: \(stats.stdout)")
    }

    @Test("the listing walks seconds newest first across pages and shards; a mostly expired second is rewritten a minute later")
    func listingBuckets() throws {
        let stack = try IntegrationStack(label: "buckets")
        let store = stack.store
        // 100 tasks queued in one second, 50 spread over the 25 seconds before it.
        let base: Int64 = 5_000_000
        let crowded = (0..<100).map { TaskMessage(id: "c\($0)", type: "add", args: [1, 1], maxAttempts: 1, queuedAt: base + Int64($0)) }
        let spread = (0..<50).map {
            TaskMessage(id: "s\($0)", type: "concat", args: ["a"], maxAttempts: 1, queuedAt: base - 25_000 + Int64($0) * 500)
        }
        #expect(try store.queue(spread + crowded).allSatisfy { $0 == .queued })
        let everyID = (spread + crowded).sorted { $0.queuedAt > $1.queuedAt }.map(\.id)

        func walk(status: TaskStatus? = nil, type: String? = nil) throws -> [String] {
            var ids: [String] = []
            var cursor: String? = nil
            repeat {
                let page = try store.taskPage(status: status, type: type, cursor: cursor, limit: 7, scanLimit: 40)
                ids += page.records.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            return ids
        }
        #expect(try walk() == everyID, "every task once, newest first")
        #expect(try walk(type: "concat") == everyID.filter { $0.hasPrefix("s") })
        #expect(throws: TaskStore.InvalidCursor.self) { try store.taskPage(status: nil, type: nil, cursor: "x", limit: 7) }

        // 90 of the crowded second succeed, 10 fail; once the successes expire, the second's
        // bucket keeps only the failures.
        let now: Int64 = base + 1_000
        _ = try store.begin(crowded, partitions: crowded.map { _ in 0 }, worker: "w1", at: now)
        try store.finish(
            crowded.enumerated().map { index, task in
                AttemptOutcome(id: task.id, attempt: 1, kind: index < 90 ? .success : .failed, payload: index < 90 ? "2" : "no")
            }, worker: "w1", begunAt: now, at: now)
        #expect(try walk(status: .failed) == crowded.suffix(10).reversed().map(\.id))
        while try store.prune(at: now + 2 * 86_400_000) > 0 {}
        #expect(try store.counts()[.success] == 0)
        #expect(try walk() == everyID.filter { !$0.hasPrefix("c") || Int($0.dropFirst())! >= 90 })
        // The bucket is rewritten a minute later, not at once: a bucket whose tasks all expire
        // together is deleted before it is due, without being read.
        let early = try bucketLengths(stack, second: base / 1000)
        while try store.prune(at: now + 2 * 86_400_000 + 61_000) > 0 {}
        let lengths = try bucketLengths(stack, second: base / 1000)
        if store.keys.shards == 1 {
            #expect(early == [100], "not rewritten yet: \(early)")
            #expect(lengths == [10], "the crowded second's bucket holds only what is kept: \(lengths)")
        }
    }

    @Test("a listing bucket rewritten with none of its tasks kept goes with its second")
    func bucketRewrittenEmpty() throws {
        let stack = try IntegrationStack(label: "emptied")
        let store = stack.store
        // 100 tasks of one second, all in one shard; 90 succeed and expire, 10 fail and are kept.
        let base: Int64 = 7_000_000
        let shard = store.keys.shard(of: "e0")
        let ids = (0..<3_000).map { "e\($0)" }.filter { store.keys.shard(of: $0) == shard }.prefix(100)
        try #require(ids.count == 100)
        let tasks = ids.enumerated().map { index, id in
            TaskMessage(id: id, type: "add", args: [1, 1], maxAttempts: 1, queuedAt: base + Int64(index))
        }
        #expect(try store.queue(tasks).allSatisfy { $0 == .queued })
        let now = base + 1_000
        _ = try store.begin(tasks, partitions: tasks.map { _ in 0 }, worker: "w1", at: now)
        try store.finish(
            tasks.enumerated().map { index, task in
                AttemptOutcome(id: task.id, attempt: 1, kind: index < 90 ? .success : .failed, payload: index < 90 ? "2" : "no")
            }, worker: "w1", begunAt: now, at: now)
        while try store.prune(at: now + 2 * 86_400_000) > 0 {}
        // The failures' records go behind the counts' back, so `live` still counts 10 when the
        // bucket is rewritten a minute later and finds none of its tasks kept.
        let records = store.keys.records(of: tasks[0].id)
        _ = try redis(["HDEL", records] + tasks.suffix(10).map(\.id), stack)
        while try store.prune(at: now + 2 * 86_400_000 + 61_000) > 0 {}
        // The shard's other keys, named as the README's key table names them.
        let shardBase = String(records.dropLast("records".count))
        let second = String(base / 1000)
        #expect(try redis(["ZSCORE", shardBase + "buckets", second], stack) == [], "the second is no longer listed")
        #expect(try redis(["HEXISTS", shardBase + "live", second], stack) == ["0"])
        #expect(try redis(["EXISTS", shardBase + "bucket:" + second], stack) == ["0"])
        #expect(try store.taskPage(status: nil, type: nil, cursor: nil, limit: 10).records.isEmpty)
    }

    @Test("tasks of one millisecond page through once each; a cursor of the other walk is refused; an id queued again after it expired is listed once")
    func listingEdges() throws {
        let stack = try IntegrationStack(label: "paging")
        let store = stack.store
        // Recent times: every queue call prunes what is due by the clock, and the failures
        // below must be kept while the success expires.
        let at = currentEpochMilliseconds() - 10_000
        // One batch shares one queued_at, and its ids do not follow the queueing order (random ids do not).
        let batch = (0..<30).map {
            TaskMessage(id: "t" + String(29 - $0 + 100), type: "add", args: [1, 1], maxAttempts: 1, queuedAt: at)
        }
        #expect(try store.queue(batch).allSatisfy { $0 == .queued })
        func walk(status: TaskStatus? = nil) throws -> [String] {
            var ids: [String] = []
            var cursor: String? = nil
            repeat {
                let page = try store.taskPage(status: status, type: nil, cursor: cursor, limit: 7)
                ids += page.records.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            return ids
        }
        let ids = try walk()
        #expect(ids.count == 30 && Set(ids) == Set(batch.map(\.id)), "every task once: \(ids)")
        if store.keys.shards == 1 { #expect(ids == batch.reversed().map(\.id), "the last queued first") }

        // Ten fail, one succeeds.
        let now = at + 1_000
        let finished = Array(batch.prefix(11))
        _ = try store.begin(finished, partitions: finished.map { _ in 0 }, worker: "w1", at: now)
        let outcomes = finished.enumerated().map { index, task in
            AttemptOutcome(id: task.id, attempt: 1, kind: index == 0 ? .success : .failed, payload: index == 0 ? "2" : "no")
        }
        #expect(try store.finish(outcomes, worker: "w1", begunAt: now, at: now).allSatisfy { $0 })
        let listing = try #require(try store.taskPage(status: nil, type: nil, cursor: nil, limit: 3).nextCursor)
        let failures = try #require(try store.taskPage(status: .failed, type: nil, cursor: nil, limit: 3).nextCursor)
        #expect(throws: TaskStore.InvalidCursor.self) { try store.taskPage(status: .failed, type: nil, cursor: listing, limit: 3) }
        #expect(throws: TaskStore.InvalidCursor.self) { try store.taskPage(status: nil, type: nil, cursor: failures, limit: 3) }

        // The success expires (the failures are kept longer, so its second's bucket stays),
        // then its id is queued again as a new task: listed once, as the new one.
        let succeeded = batch[0].id
        while try store.prune(at: now + 2 * 86_400_000) > 0 {}
        #expect(try store.record(id: succeeded) == nil)
        let again = TaskMessage(id: succeeded, type: "add", args: [2, 2], maxAttempts: 1, queuedAt: at + 60_000)
        #expect(try store.queue([again]) == [.queued])
        let after = try walk()
        #expect(after.filter { $0 == succeeded }.count == 1, "\(after)")
        #expect(after.count == 30 && after.first == succeeded)
    }

    @Test("pages of FAILED go on below the last task shown while tasks leave and enter the index")
    func indexPagesGoOnByKey() throws {
        let stack = try IntegrationStack(label: "index-pages")
        let store = stack.store
        let at = currentEpochMilliseconds() - 10_000
        // f0 to f5 each in a millisecond of its own, f6 to f9 in one millisecond.
        let tasks = (0..<10).map {
            TaskMessage(id: "f\($0)", type: "add", args: [1, 1], maxAttempts: 1, queuedAt: at + Int64(min($0, 6)))
        }
        let late = TaskMessage(id: "g", type: "add", args: [1, 1], maxAttempts: 1, queuedAt: at - 1_000)
        func fail(_ tasks: [TaskMessage]) throws {
            #expect(try store.queue(tasks).allSatisfy { $0 == .queued })
            _ = try store.begin(tasks, partitions: tasks.map { _ in 0 }, worker: "w1", at: at + 100)
            let outcomes = tasks.map { AttemptOutcome(id: $0.id, attempt: 1, kind: .failed, payload: "no") }
            #expect(try store.finish(outcomes, worker: "w1", begunAt: at + 100, at: at + 100).allSatisfy { $0 })
        }
        try fail(tasks)
        var shown: [String] = []
        func page(_ cursor: String?) throws -> String? {
            let page = try store.taskPage(status: .failed, type: nil, cursor: cursor, limit: 3)
            shown += page.records.map(\.id)
            return page.nextCursor
        }
        // The oldest failure leaves the index below the cursor, then one enters below it and
        // the newest leaves above it: by position, the next pages showed a task twice and skipped one.
        var cursor = try page(nil)
        #expect(try store.requeue(["f0"], at: at + 200) == [.requeued])
        let second = try #require(cursor)
        cursor = try page(second)
        try fail([late])
        #expect(try store.requeue(["f9"], at: at + 200) == [.requeued])
        while let next = cursor { cursor = try page(next) }
        let expected = ["f9", "f8", "f7", "f6", "f5", "f4", "f3", "f2", "f1", "g"]
        // (On a cluster, g is not shown when the walk of its node had ended, as the README says.)
        let withoutLate = shown.filter { $0 != "g" }
        #expect(withoutLate.count == 9 && Set(withoutLate) == Set(expected.dropLast()), "each failure once: \(shown)")
        #expect(shown.count - withoutLate.count <= 1)
        if store.keys.shards == 1 { #expect(shown == expected) }
        #expect(throws: TaskStore.InvalidCursor.self) { try store.taskPage(status: .failed, type: nil, cursor: "12_6", limit: 3) }
        // Signed numbers are no cursor's: refused here, not by the script (a Redis error, a 503 on the web).
        for (status, signed) in [(TaskStatus.failed, "+5_61"), (.failed, "-0_61"), (nil, "+1:2"), (nil, "-0:2")] {
            #expect(throws: TaskStore.InvalidCursor.self, "\(signed)") {
                try store.taskPage(status: status, type: nil, cursor: signed, limit: 3)
            }
        }
    }

    @Test("a listing cursor's position past the end of its second reads as that second's end; a number no cursor holds is refused")
    func cursorPositionsOutOfRange() throws {
        let stack = try IntegrationStack(label: "cursor-range")
        let store = stack.store
        // Six tasks in each of two seconds, three seconds apart, each in a millisecond of its own.
        let newest = (currentEpochMilliseconds() / 1000 - 10) * 1000
        let older = newest - 3_000
        let tasks = (0..<12).map {
            TaskMessage(id: "r\($0)", type: "add", args: [1, 1], maxAttempts: 1, queuedAt: ($0 < 6 ? newest : older) + Int64($0 % 6) * 10)
        }
        #expect(try store.queue(tasks).allSatisfy { $0 == .queued })
        func walk(from cursor: String) throws -> [String] {
            var ids: [String] = []
            var cursor: String? = cursor
            while let next = cursor {
                let page = try store.taskPage(status: nil, type: nil, cursor: next, limit: 3)
                ids += page.records.map(\.id)
                cursor = page.nextCursor
            }
            return ids
        }
        // Newest first, of the shards whose cursor part goes on at or below `second(shard)`.
        func expected(_ second: (Int) -> Int64?) -> [String] {
            tasks.filter { task in second(store.keys.shard(of: task.id)).map { task.queuedAt / 1000 <= $0 } ?? false }
                .sorted { $0.queuedAt > $1.queuedAt }.map(\.id)
        }

        // A real cursor, each shard's position moved far past the end of its second: each
        // shard goes on from its second's last id, so its tasks of that second are listed again.
        let parts = try #require(try store.taskPage(status: nil, type: nil, cursor: nil, limit: 3).nextCursor)
            .split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let seconds = parts.map { $0 == "-" ? nil : Int64($0.split(separator: ":")[0]) }
        let moved = zip(parts, seconds).map { part, second in second.map { "\($0):4294967296" } ?? part }
        #expect(try walk(from: moved.joined(separator: ".")) == expected { seconds[$0] })

        // A second that has no bucket (between the two), and one far in the future, go on
        // from the next older second that has one.
        let between = Array(repeating: "\(older / 1000 + 1):4294967296", count: store.keys.shards).joined(separator: ".")
        #expect(try walk(from: between) == expected { _ in older / 1000 })
        let future = Array(repeating: "9007199254740992:4294967296", count: store.keys.shards).joined(separator: ".")
        #expect(try walk(from: future) == expected { _ in newest / 1000 })

        // Past 2^53, the script's numbers (doubles) can no longer tell one position from the next.
        for part in ["\(newest / 1000):99999999999999999", "9007199254740993:0"] {
            let cursor = Array(repeating: part, count: store.keys.shards).joined(separator: ".")
            #expect(throws: TaskStore.InvalidCursor.self) { try store.taskPage(status: nil, type: nil, cursor: cursor, limit: 3) }
        }
    }

    /// The length of the listing bucket of `second` on every node that has one.
    private func bucketLengths(_ stack: IntegrationStack, second: Int64) throws -> [Int] {
        let redis = stack.settings.redis
        var environment = ProcessInfo.processInfo.environment
        environment["REDISCLI_AUTH"] = redis.password
        return try redis.nodes.flatMap { node in
            let cli = ["redis-cli", "-h", node.host, "-p", String(node.port), "-n", String(redis.database)]
            let found = try IntegrationStack.outputLines(
                of: cli + ["--scan", "--pattern", stack.settings.keyPrefix + "*bucket:\(second)"], environment: environment)
            return try found.map {
                try Int(IntegrationStack.outputLines(of: cli + ["LLEN", $0], environment: environment).first ?? "") ?? -1
            }
        }
    }

    /// Runs `redis-cli -c ARGUMENTS` (following a cluster's redirections) against the test's
    /// Redis; the lines it printed.
    private func redis(_ arguments: [String], _ stack: IntegrationStack) throws -> [String] {
        let redis = stack.settings.redis
        let node = try #require(redis.nodes.first)
        var environment = ProcessInfo.processInfo.environment
        environment["REDISCLI_AUTH"] = redis.password
        return try IntegrationStack.outputLines(
            of: ["redis-cli", "-c", "-h", node.host, "-p", String(node.port), "-n", String(redis.database)] + arguments,
            environment: environment)
    }

    /// Every key under the test's namespace on every node YADTQ_REDIS names (a test may scan;
    /// YADTQ itself never does).
    private func redisKeys(_ stack: IntegrationStack) throws -> [String] {
        try stack.redisOnEveryNode(["--scan", "--pattern", stack.settings.keyPrefix + "*"]).flatMap { $0 }
    }
}
