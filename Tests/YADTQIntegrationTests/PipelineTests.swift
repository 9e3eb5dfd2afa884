import Foundation
import Testing
import YADTQCore

/// The core pipeline end to end: yadtq-run -> broker -> yadtq-worker -> Redis,
/// with real processes, the real broker and the real Redis.
@Suite("Pipeline", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct PipelineTests {
    /// A mixed batch with the result each task must end with.
    static func mixedBatch(count: Int) -> (lines: [String], expected: [String: JSONValue]) {
        var lines: [String] = []
        var expected: [String: JSONValue] = [:]
        for index in 0..<count {
            let id = "task-\(index)"
            switch index % 4 {
            case 0:
                lines.append(#"{"id": "\#(id)", "type": "add", "args": [\#(index), 7]}"#)
                expected[id] = .int(Int64(index + 7))
            case 1:
                lines.append(#"{"id": "\#(id)", "type": "mul", "args": [\#(index), 3]}"#)
                expected[id] = .int(Int64(index * 3))
            case 2:
                lines.append(#"{"id": "\#(id)", "type": "sub", "args": [\#(index), 0.5]}"#)
                expected[id] = .double(Double(index) - 0.5)
            default:
                lines.append(#"{"id": "\#(id)", "type": "concat", "args": ["n", "\#(index)"]}"#)
                expected[id] = .string("n\(index)")
            }
        }
        return (lines, expected)
    }

    @Test("1,000 mixed tasks through two workers; `end` makes every worker exit 0, one without partitions too")
    func mixedBatchThroughTwoWorkers() throws {
        let stack = try IntegrationStack()
        let (lines, expected) = Self.mixedBatch(count: 1000)
        // Two partitions for three workers: one of them holds none and must still exit on `end`.
        let created = try stack.run(input: "", arguments: ["--partitions", "2"])
        #expect(created.status == 0, "\(created.stderr)")
        let workers = try ["w1", "w2", "w3"].map { try stack.startWorker($0) }
        let run = try stack.run(input: (lines + ["end"]).joined(separator: "\n") + "\n", arguments: ["--wait"])
        #expect(run.status == 0, "yadtq-run failed: \(run.stderr)")
        #expect(run.stdout.split(separator: "\n").count == 1000)
        #expect(run.stderr.contains("1000 tasks: 1000 succeeded, 0 failed"))
        for worker in workers {
            #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0)
        }
        let records = try stack.waitForTerminal(Array(expected.keys), timeout: .seconds(5))
        for (id, record) in zip(expected.keys, records) {
            #expect(record?.status == .success, "\(id): \(String(describing: record))")
            #expect(record?.result == expected[id], "\(id)")
            #expect(record?.attempts == 1)
        }
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 1000, .failed: 0, .cancelled: 0])
    }

    @Test("a task that fails three times ends FAILED with three error entries and a dead-letter copy")
    func failingTaskGoesToDeadLetters() throws {
        let stack = try IntegrationStack()
        let worker = try stack.startWorker("w1")
        let input = """
            {"id": "zero", "type": "div", "args": [1, 0]}
            {"id": "nope", "type": "no_such_type", "args": []}
            {"id": "fine", "type": "div", "args": [9, 3]}
            end
            """
        let run = try stack.run(input: input + "\n", arguments: ["--wait"])
        #expect(run.status == 1, "--wait exits non-zero when a task failed")
        #expect(run.stderr.contains("3 tasks: 1 succeeded, 2 failed"), "\(run.stderr)")
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0)
        let records = try stack.store.records(ids: ["zero", "nope", "fine"])
        let zero = try #require(records[0])
        #expect(zero.status == .failed)
        #expect(zero.attempts == 3)
        #expect(zero.errors.map(\.attempt) == [1, 2, 3])
        #expect(zero.errors.allSatisfy { $0.error.contains("division by zero") && $0.worker == "w1" })
        let nope = try #require(records[1])
        #expect(nope.status == .failed)
        #expect(nope.attempts == 1, "an unknown task type fails at once, without retries")
        #expect(nope.error?.contains("no_such_type") == true)
        #expect(records[2]?.result == .int(3) || records[2]?.result == .double(3))
        // One more than expected, so that a copy per failed attempt would show.
        let letters = try stack.readTopic(stack.topic + ".dlq", expecting: 3, timeout: .seconds(12))
        let ids = try letters.map { try JSONValue(parsing: $0)["id"]?.stringValue ?? "" }
        #expect(ids.sorted() == ["nope", "zero"], "one copy per failed task")
        #expect(letters.contains { $0.contains("division by zero") })
    }

    @Test("a plugin that keeps Lua's collector busy past its time limit ends FAILED as a timeout within a second of it; the worker goes on with the next task")
    func collectorStoppedInTheWorker() throws {
        let chain = try String(
            contentsOf: IntegrationStack.repository.appendingPathComponent("Tests/Fixtures/weak_key_chain.lua"), encoding: .utf8)
        let stack = try IntegrationStack(label: "collector", extraPlugins: ["chain": chain])
        let worker = try stack.startWorker("w1", arguments: ["--timeout", "1s"])
        let input = """
            {"id": "stuck", "type": "chain", "args": [], "max_attempts": 1}
            {"id": "after", "type": "add", "args": [1, 2]}
            end
            """
        #expect(try stack.run(input: input + "\n").status == 0)
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0, "the worker drained to the end marker")
        let records = try stack.store.records(ids: ["stuck", "after"])
        let stuck = try #require(records[0])
        #expect(stuck.status == .failed && stuck.error?.hasPrefix("timeout after 1s") == true, "\(String(describing: stuck.error))")
        let ran = (stuck.finishedAt ?? .max) - (stuck.startedAt ?? 0)
        #expect(ran < 3_000, "the attempt ran \(ran) ms against its 1 s limit")
        #expect(records[1]?.status == .success && records[1]?.result == .int(3))
    }

    @Test("a task waiting for its retry does not hold up the tasks behind it, nor the end marker before it is done")
    func retryBackoffDoesNotBlock() throws {
        let stack = try IntegrationStack()
        // One partition: the tasks behind the failing one are in the same ordered stream.
        #expect(try stack.run(input: "", arguments: ["--partitions", "1"]).status == 0)
        // Its attempts are 10 s apart: room for the tasks behind it on a busy machine.
        let worker = try stack.startWorker("w1", arguments: ["--retry-delay", "10s", "--retry-max-delay", "10s"])
        #expect(try stack.run(input: #"{"id": "zero", "type": "div", "args": [1, 0]}"# + "\n").status == 0)
        let store = stack.store
        let deadline = ContinuousClock.now + .seconds(30)
        while try store.record(id: "zero")?.errors.isEmpty != false, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(try store.record(id: "zero")?.errors.count == 1, "the first attempt failed")
        let behind = (0..<20).map { "add \($0) 1" } + ["end"]
        let run = try stack.run(input: behind.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let ids = run.stdout.split(separator: "\n").map(String.init)
        _ = try stack.waitForTerminal(ids, timeout: .seconds(30))
        #expect(try store.record(id: "zero")?.status.isTerminal == false, "the tasks behind it finished during its wait")
        #expect(try store.endOfStream(topic: stack.topic)?.isComplete != true,
                "the end marker is not reached while a task before it waits for its retry")
        let records = try stack.waitForTerminal(ids + ["zero"], timeout: .seconds(60))
        let zero = try #require(records.last ?? nil)
        #expect(zero.status == .failed && zero.attempts == 3)
        let finishedBehind = records.dropLast().compactMap { $0?.finishedAt }
        #expect(finishedBehind.count == 20)
        // The tasks behind it finished during the first wait.
        #expect(finishedBehind.allSatisfy { $0 < zero.errors[1].at }, "\(finishedBehind.max() ?? 0) vs \(zero.errors[1].at)")
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(30)) == 0)
    }

    @Test("--retry-delay 0s, one task per batch: an attempt's retry begun in the millisecond its failure was written is a new attempt, and every task ends FAILED after exactly its attempts")
    func retryInTheSameMillisecond() throws {
        let stack = try IntegrationStack()
        #expect(try stack.run(input: "", arguments: ["--partitions", "1"]).status == 0)
        // No backoff and one task per batch: attempt 1's finish, attempt 2's begin and its
        // finish often fall in one millisecond of the wall clock.
        let worker = try stack.startWorker("w1", arguments: ["--retry-delay", "0s", "--batch-size", "1"])
        let count = 1000
        let ids = (0..<count).map { "same-ms-\($0)" }
        let lines = ids.map { #"{"id": "\#($0)", "type": "fail", "args": [], "max_attempts": 2}"# }
        let run = try stack.run(input: (lines + ["end"]).joined(separator: "\n") + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        let records = try stack.waitForTerminal(ids, timeout: .seconds(120))
        let stuck = records.filter { $0?.status != .failed }.count
        let overRun = records.filter { ($0?.errors.count ?? 0) != 2 }.count
        #expect(stuck == 0, "\(stuck) of \(count) tasks did not end FAILED")
        #expect(overRun == 0, "\(overRun) of \(count) tasks did not run exactly their 2 attempts")
        #expect(records.allSatisfy { $0?.attempts == 2 && $0?.errors.map(\.attempt) == [1, 2] })
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0)
    }

    @Test("a message published twice, both copies in one batch: the task runs once and the committed offset reaches the end")
    func messagePublishedTwice() throws {
        let stack = try ChaosStack()
        defer { stack.shutDown() }
        let created = try stack.base.run(input: "", arguments: ["--partitions", "1"])
        #expect(created.status == 0, "\(created.stderr)")
        // Both copies are on the topic before the worker starts, so its first batch takes both.
        let message = TaskMessage(id: "twice", type: "add", args: [.int(1), .int(2)], maxAttempts: 3, queuedAt: 1)
        _ = try stack.produceRaw([message.encoded(), message.encoded()], partition: 0)
        let worker = try stack.base.startWorker("w1")
        let record = try stack.base.waitForTerminal(["twice"], timeout: .seconds(30))[0]
        #expect(record?.status == .success && record?.result == .int(3) && record?.attempts == 1)
        #expect(
            ChaosStack.waitUntil(.seconds(15)) { (try? stack.committedOffsets(partitions: 1)) == [2] },
            "committed: \(String(describing: try? stack.committedOffsets(partitions: 1)))")
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test("kill -9 of a worker in the middle of 5,000 tasks: every task terminal, right results, nothing rewritten")
    func killedWorkerLosesNothing() throws {
        let stack = try IntegrationStack(extraPlugins: [
            "slow_add": """
                return function(args)
                  local start = os.clock()
                  while os.clock() - start < 0.002 do end
                  return args[1] + args[2]
                end
                """
        ])
        let count = 5000
        // Each task sleeps 2 ms so the run lasts long enough to kill a worker in the middle.
        let lines = (0..<count).map { #"{"id": "k-\#($0)", "type": "slow_add", "args": [\#($0), 1]}"# }
        let ids = (0..<count).map { "k-\($0)" }
        let created = try stack.run(input: "", arguments: ["--partitions", "4"])
        #expect(created.status == 0, "\(created.stderr)")
        let arguments = ["--batch-size", "20", "--heartbeat-interval", "1s"]
        let victim = try stack.startWorker("victim", arguments: arguments)
        let survivor = try stack.startWorker("survivor", arguments: arguments)
        let store = stack.store
        // Publish once both hold partitions, so the victim cannot have run its share alone
        // before the survivor joined.
        let assigned = ContinuousClock.now + .seconds(60)
        var held: [String: Int] = [:]
        repeat {
            Thread.sleep(forTimeInterval: 0.2)
            for worker in try store.workerHeartbeats() {
                held[worker.name] = worker.heartbeat?.partitions.count ?? 0
            }
        } while !(held["victim", default: 0] > 0 && held["survivor", default: 0] > 0) && ContinuousClock.now < assigned
        #expect(held["victim", default: 0] > 0 && held["survivor", default: 0] > 0, "\(held)")
        let run = try stack.run(input: lines.joined(separator: "\n") + "\nend\n")
        #expect(run.status == 0, "\(run.stderr)")
        // Kill once the victim has finished some of its tasks, long before all of them.
        let deadline = ContinuousClock.now + .seconds(60)
        while try store.records(ids: ids).filter({ $0?.worker == "victim" && $0?.status == .success }).count < 100,
            ContinuousClock.now < deadline
        {
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(victim.processIdentifier, SIGKILL)
        let killedAt = currentEpochMilliseconds()
        let before = try store.records(ids: ids).compactMap { $0 }.filter { $0.status.isTerminal }
        #expect(before.count < count, "the kill must land in the middle of the run")
        #expect(IntegrationStack.waitForExit(survivor, timeout: .seconds(120)) == 0)
        let records = try stack.waitForTerminal(ids, timeout: .seconds(5))
        for (index, record) in records.enumerated() {
            #expect(record?.status == .success, "k-\(index): \(String(describing: record))")
            #expect(record?.result == .int(Int64(index + 1)))
        }
        let after = Dictionary(uniqueKeysWithValues: records.compactMap { $0 }.map { ($0.id, $0) })
        for old in before {
            #expect(after[old.id]?.finishedAt == old.finishedAt, "\(old.id) was rewritten after it was terminal")
            #expect(after[old.id]?.worker == old.worker)
        }
        // Failover gap: from the kill to the first task finished on a partition the victim held
        // (the store's records: the outside view has no partition).
        let victimPartitions = Set(before.filter { $0.worker == "victim" }.compactMap(\.partition))
        let resumed = try store.records(ids: ids).compactMap { $0 }.filter {
            $0.worker != "victim" && victimPartitions.contains($0.partition ?? -1) && ($0.finishedAt ?? 0) >= killedAt
        }.compactMap(\.finishedAt).min()
        #expect(!victimPartitions.isEmpty)
        let gap = try #require(resumed, "no task of the victim's partitions \(victimPartitions.sorted()) was finished by another worker")
        print("failover: the victim's partitions \(victimPartitions.sorted()) resumed \(gap - killedAt) ms after the kill; \(before.count) of \(count) tasks were done")
    }
}

@Suite("Task store rules", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"))
struct TaskStoreRuleTests {
    @Test("a terminal status is never overwritten and a stale attempt cannot write")
    func terminalIsFinal() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "r1", type: "add", args: [.int(1), .int(2)], maxAttempts: 3, queuedAt: 1)
        #expect(try store.queue([task]) == [.queued])
        #expect(try store.queue([task]) == [.queued], "a replayed queue call is recognised as the same task")
        var again = task
        again.queuedAt = 2
        #expect(try store.queue([again]) == [.duplicate], "a second task with the same id is refused")
        // Another submission of the id in the very millisecond of the first (another producer's)
        // is not a replay of the first: a duplicate, not published with its arguments dropped.
        var sameMillisecond = task
        sameMillisecond.args = [.int(5), .int(6)]
        #expect(try store.queue([sameMillisecond]) == [.duplicate])
        sameMillisecond = task
        sameMillisecond.type = "mul"
        #expect(try store.queue([sameMillisecond]) == [.duplicate])
        #expect(try store.begin([task], partitions: [0], worker: "a", at: 3) == [.run(attempt: 1)])
        // Worker b finds a's attempt in flight and writes nothing; once a's heartbeat shows it
        // over, b takes it over: attempt 2.
        let attemptOfA = RunningAttempt(worker: "a", startedAt: 3)
        #expect(try store.begin([task], partitions: [1], worker: "b", at: 4) == [.runningElsewhere(attemptOfA)])
        #expect(try store.record(id: "r1")?.attempts == 1)
        #expect(try store.begin([task], partitions: [1], worker: "b", at: 4, attemptsOver: [attemptOfA]) == [.run(attempt: 2)])
        // While it runs, every reader sees the attempt in flight (kept beside the record).
        let running = try #require(try store.record(id: "r1"))
        #expect(running.status == .processing && running.attempts == 2 && running.worker == "b")
        #expect(running.startedAt == 4 && running.partition == 1)
        #expect(try store.statuses(of: ["r1"]) == [.processing])
        #expect(try store.taskPage(status: .processing, type: nil, cursor: nil, limit: 10).records.map(\.worker) == ["b"])
        // a wakes up and reports attempt 1: stale, not written.
        #expect(try store.finish([AttemptOutcome(id: "r1", attempt: 1, kind: .success, payload: "99")], worker: "a", begunAt: 3, at: 5) == [false])
        #expect(try store.finish([AttemptOutcome(id: "r1", attempt: 2, kind: .success, payload: "3")], worker: "b", begunAt: 4, at: 6) == [true])
        #expect(try store.begin([task], partitions: [0], worker: "c", at: 7) == [.alreadyTerminal])
        #expect(try store.finish([AttemptOutcome(id: "r1", attempt: 2, kind: .failed, payload: "late")], worker: "b", begunAt: 4, at: 8) == [false])
        let record = try #require(try store.record(id: "r1"))
        #expect(record.status == .success && record.result == .int(3) && record.worker == "b" && record.finishedAt == 6)
        #expect(record.attempts == 2 && record.startedAt == 4 && record.partition == 1)
        #expect(try store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 1, .failed: 0, .cancelled: 0])
    }

    @Test("a batch queues each task with its own attempts and times, odd ones (a message's negative queued_at) too")
    func shapesOfOneBatch() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let now = currentEpochMilliseconds()
        let tasks = [
            TaskMessage(id: "s1", type: "add", args: [], maxAttempts: 3, queuedAt: now),
            TaskMessage(id: "s2", type: "add", args: [], maxAttempts: 5, queuedAt: now),
            TaskMessage(id: "s3", type: "add", args: [], maxAttempts: 3, queuedAt: -5),
            TaskMessage(id: "s4", type: "echo.v2", args: [], maxAttempts: 3, queuedAt: now),
            TaskMessage(id: "s5", type: "add", args: [], maxAttempts: 1, queuedAt: now),
        ]
        #expect(try store.queue(tasks, dueAt: [0, 0, 0, 0, now + 60_000]) == [.queued, .queued, .queued, .queued, .scheduled])
        let records = try tasks.map { try #require(try store.record(id: $0.id)) }
        #expect(records.map(\.type) == ["add", "add", "add", "echo.v2", "add"])
        #expect(records.map(\.maxAttempts) == [3, 5, 3, 3, 1])
        #expect(records.map(\.queuedAt) == [now, now, nil, now, now], "a time before 1970 reads as none")
        #expect(records.map(\.status) == [.queued, .queued, .queued, .queued, .scheduled])
        #expect(try store.queue(tasks) == [.queued, .queued, .queued, .queued, .queued], "a replayed call: each task is its own")
    }

    @Test("one begin call of tasks from several partitions, in runs and not, keeps each task's own partition")
    func beginKeepsEachPartition() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let tasks = (1...6).map { TaskMessage(id: "p\($0)", type: "add", args: [], maxAttempts: 3, queuedAt: 1) }
        _ = try store.queue(tasks)
        let partitions: [Int32] = [3, 3, 5, 3, 0, 0]
        #expect(try store.begin(tasks, partitions: partitions, worker: "w", at: 2) == Array(repeating: .run(attempt: 1), count: 6))
        let records = try tasks.map { try #require(try store.record(id: $0.id)) }
        #expect(records.map(\.partition) == partitions.map { Optional($0) })
        #expect(records.allSatisfy { $0.status == .processing && $0.attempts == 1 && $0.worker == "w" })
    }

    @Test("one finish call mixing outcomes with and without logs or progress writes each task its own")
    func finishMixesOutcomes() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let tasks = (1...4).map { TaskMessage(id: "m\($0)", type: "add", args: [], maxAttempts: 3, queuedAt: 1) }
        _ = try store.queue(tasks)
        #expect(try store.begin(tasks, partitions: [0, 0, 0, 0], worker: "w", at: 2) == Array(repeating: .run(attempt: 1), count: 4))
        let outcomes = [
            AttemptOutcome(id: "m1", attempt: 1, kind: .success, payload: "1"),
            AttemptOutcome(id: "m2", attempt: 1, kind: .retry, payload: "flaky", logs: ["tried"], progress: 0.25),
            AttemptOutcome(id: "m3", attempt: 1, kind: .success, payload: "3", logs: ["done"]),
            AttemptOutcome(id: "m4", attempt: 1, kind: .failed, payload: "broken"),
        ]
        #expect(try store.finish(outcomes, worker: "w", begunAt: 2, at: 3) == [true, true, true, true])
        let records = try tasks.map { try #require(try store.record(id: $0.id)) }
        #expect(records.map(\.status) == [.success, .processing, .success, .failed])
        #expect(records[0].result == .int(1) && records[0].logs.isEmpty && records[0].progress == nil)
        #expect(records[1].logs == ["tried"] && records[1].progress == 0.25 && records[1].errors.count == 1)
        #expect(records[2].result == .int(3) && records[2].logs == ["done"])
        #expect(records[3].error == "broken" && records[3].logs.isEmpty)
    }

    @Test(
        "a worker's write returns only once a replica has it, also when its call is replayed and writes nothing new",
        .enabled(if: IntegrationStack.isClusterStack, "needs the cluster pass's replicas"))
    func waitsForReplicaAcrossReplays() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "replicated-1", type: "add", args: [], maxAttempts: 1, queuedAt: 1)
        #expect(try store.begin([task], partitions: [0], worker: "a", at: 2) == [.run(attempt: 1)])
        // INFO's lines end in "\r\n", one Character, which outputLines does not split on.
        let info = try stack.redisOnEveryNode(["INFO", "replication"]).joined().flatMap { $0.split(whereSeparator: \.isNewline) }
        let replicaPorts = info.compactMap { line -> String? in
            guard line.hasPrefix("slave"), let port = line.split(separator: ",").first(where: { $0.hasPrefix("port=") }) else { return nil }
            return String(port.dropFirst("port=".count))
        }
        let directory = try #require(ProcessInfo.processInfo.environment["YADTQ_STACK_DIR"])
        let replicas = try replicaPorts.map { port in
            try #require(Int32(String(contentsOfFile: "\(directory)/redis-\(port).pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        #expect(!replicas.isEmpty)
        // Frozen replicas must not be judged failed meanwhile (the client would stop waiting for them).
        _ = try stack.redisOnEveryNode(["CONFIG", "SET", "cluster-node-timeout", "60000"])
        defer { _ = try? stack.redisOnEveryNode(["CONFIG", "SET", "cluster-node-timeout", "2000"]) }
        for pid in replicas { kill(pid, SIGSTOP) }
        let frozen = ContinuousClock.now
        let thaw = DispatchWorkItem { for pid in replicas { kill(pid, SIGCONT) } }
        defer { thaw.perform() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 6, execute: thaw)
        // The first WAIT times out after 2 s and the call is replayed on a new connection,
        // where the replayed script finds its success written and writes nothing.
        let outcome = AttemptOutcome(id: "replicated-1", attempt: 1, kind: .success, payload: "0")
        #expect(try store.finish([outcome], worker: "a", begunAt: 2, at: 3) == [true])
        let waited = ContinuousClock.now - frozen
        #expect(waited >= .seconds(5.5), "finish returned after \(waited), while no replica could have its write")
    }

    @Test("status counters follow every change, and an id twice in one batch is queued and begun once")
    func countersFollowChanges() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let tasks = (0..<4).map { TaskMessage(id: "c\($0)", type: "add", args: [], maxAttempts: 1, queuedAt: 20) }
        #expect(try store.queue(tasks + [tasks[0]]) == [.queued, .queued, .queued, .queued, .duplicate])
        #expect(try store.queue(tasks) == [.queued, .queued, .queued, .queued], "a replayed batch changes nothing")
        #expect(try store.counts() == [.scheduled: 0, .queued: 4, .processing: 0, .success: 0, .failed: 0, .cancelled: 0])
        // c0 twice in one batch (its message published twice): one attempt, counted once.
        #expect(
            try store.begin(Array(tasks[..<3]) + [tasks[0]], partitions: [0, 0, 0, 0], worker: "a", at: 21)
                == [.run(attempt: 1), .run(attempt: 1), .run(attempt: 1), .run(attempt: 1)])
        #expect(try store.counts() == [.scheduled: 0, .queued: 1, .processing: 3, .success: 0, .failed: 0, .cancelled: 0])
        let outcomes = [
            AttemptOutcome(id: "c0", attempt: 1, kind: .success, payload: "1"),
            AttemptOutcome(id: "c1", attempt: 1, kind: .failed, payload: "no"),
            AttemptOutcome(id: "c1", attempt: 1, kind: .success, payload: "late"),
        ]
        #expect(try store.finish(outcomes, worker: "a", begunAt: 21, at: 22) == [true, true, false])
        #expect(try store.counts() == [.scheduled: 0, .queued: 1, .processing: 1, .success: 1, .failed: 1, .cancelled: 0])
        let processing = try store.taskPage(status: .processing, type: nil, cursor: nil, limit: 10)
        #expect(processing.records.map(\.id) == ["c2"] && processing.total == 1)
        let queued = try store.taskPage(status: .queued, type: nil, cursor: nil, limit: 10)
        #expect(queued.records.map(\.id) == ["c3"] && queued.total == 1)
        let succeeded = try store.taskPage(status: .success, type: "add", cursor: nil, limit: 10)
        #expect(succeeded.records.map(\.id) == ["c0"])
    }

    @Test("attempts used up by crashed workers end as exhausted; a missing record is recreated")
    func exhaustedAndRecreated() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "r2", type: "add", args: [], maxAttempts: 2, queuedAt: 10)
        // Never queued through yadtq-run: the worker recreates the record from the message.
        #expect(try store.begin([task], partitions: [0], worker: "a", at: 11) == [.run(attempt: 1)])
        #expect(try store.begin([task], partitions: [0], worker: "a", at: 12) == [.run(attempt: 2)])
        #expect(try store.begin([task], partitions: [0], worker: "a", at: 13) == [.exhausted(attempts: 2)])
        let outcomes = [
            AttemptOutcome(
                id: "r2", attempt: 2, kind: .failed, payload: "interrupted", logs: ["a line"], progress: 0.5, ofAttemptsUsedUp: true)
        ]
        #expect(try store.finish(outcomes, worker: "a", begunAt: 13, at: 14) == [true])
        let record = try #require(try store.record(id: "r2"))
        #expect(record.status == .failed && record.errors.count == 1 && record.logs == ["a line"] && record.progress == 0.5)
    }

    @Test("a task failed for attempts other workers used up: its replayed finish answers as the first call did")
    func exhaustedFailureReplayed() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "r3", type: "add", args: [], maxAttempts: 1, queuedAt: 10)
        #expect(try store.begin([task], partitions: [0], worker: "dead", at: 11) == [.run(attempt: 1)])
        let attempt = RunningAttempt(worker: "dead", startedAt: 11)
        #expect(try store.begin([task], partitions: [0], worker: "b", at: 12) == [.runningElsewhere(attempt)])
        #expect(try store.begin([task], partitions: [0], worker: "b", at: 12, attemptsOver: [attempt]) == [.exhausted(attempts: 1)])
        let failure = [AttemptOutcome(id: "r3", attempt: 1, kind: .failed, payload: "attempts used up", ofAttemptsUsedUp: true)]
        #expect(try store.finish(failure, worker: "b", begunAt: 12, at: 13) == [true])
        // The same call again, as the client sends it after a lost reply: the same answer, and
        // nothing written twice. (The record names the worker that ran the attempt, not "b".)
        #expect(try store.finish(failure, worker: "b", begunAt: 12, at: 13) == [true])
        let record = try #require(try store.record(id: "r3"))
        #expect(record.status == .failed && record.errors.count == 1)
        #expect(try store.finish(failure, worker: "c", begunAt: 12, at: 13) == [false], "another worker's outcome is refused")
        #expect(try store.finish(failure, worker: "b", begunAt: 12, at: 14) == [false], "a later call of the same worker is refused")
    }

    @Test("a retried task whose message is lost is found by the lost-task check, also after an earlier one was")
    func retriedTaskFoundLostAgain() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "lost-1", type: "add", args: [], maxAttempts: 1, queuedAt: 1_000)
        #expect(try store.queue([task], topic: "t") == [.queued])
        #expect(try store.takeLostFromEveryShard(topic: "t", queuedFrom: 0, to: 2_000, cutoff: 1_500, at: 3_000).map(\.id) == ["lost-1"])
        try store.failUnpublished([("lost-1", "the broker refused it")], at: 3_100)
        #expect(try store.requeue(["lost-1"], at: 4_000) == [.requeued])
        // The retry's message is lost as well (its publisher died before sending it).
        #expect(try store.takeLostFromEveryShard(topic: "t", queuedFrom: 0, to: 2_000, cutoff: 5_000, at: 6_000).map(\.id) == ["lost-1"])
    }

    @Test("a task marked published again whose copy never reached the broker is found lost again")
    func republishedCopyLostFoundAgain() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "lost-2", type: "add", args: [], maxAttempts: 1, queuedAt: 1_000)
        #expect(try store.queue([task], topic: "t") == [.queued])
        #expect(try store.takeLostFromEveryShard(topic: "t", queuedFrom: 0, to: 2_000, cutoff: 1_500, at: 3_000).map(\.id) == ["lost-2"])
        // The scheduler died before publishing it: a replay of the same call returns it again,
        // a later check whose cutoff is past that mark finds it lost again, one before does not.
        #expect(try store.takeLostFromEveryShard(topic: "t", queuedFrom: 0, to: 2_000, cutoff: 1_500, at: 3_000).map(\.id) == ["lost-2"])
        #expect(try store.takeLostFromEveryShard(topic: "t", queuedFrom: 0, to: 2_000, cutoff: 2_900, at: 4_000).isEmpty)
        #expect(try store.takeLostFromEveryShard(topic: "t", queuedFrom: 0, to: 2_000, cutoff: 3_500, at: 5_000).map(\.id) == ["lost-2"])
    }

    @Test("a retry begun in the millisecond its failure was written: the worker's clock gives each call a time of its own, and the next attempt is counted and written")
    func retryInOneMillisecond() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "same-ms", type: "fail", args: [], maxAttempts: 2, queuedAt: 50)
        #expect(try store.queue([task]) == [.queued])
        var clock = CallClock()
        // Every call in one millisecond of the wall clock.
        let wall: Int64 = 100
        let first = clock.next(wall: wall)
        #expect(try store.begin([task], partitions: [0], worker: "w", at: first) == [.run(attempt: 1)])
        let retry = [AttemptOutcome(id: "same-ms", attempt: 1, kind: .retry, payload: "boom")]
        #expect(try store.finish(retry, worker: "w", begunAt: first, at: clock.next(wall: wall)) == [true])
        let second = clock.next(wall: wall)
        #expect(try store.begin([task], partitions: [0], worker: "w", at: second) == [.run(attempt: 2)], "not attempt 1 again")
        let failed = [AttemptOutcome(id: "same-ms", attempt: 2, kind: .failed, payload: "boom")]
        #expect(try store.finish(failed, worker: "w", begunAt: second, at: clock.next(wall: wall)) == [true])
        let record = try #require(try store.record(id: "same-ms"))
        #expect(record.status == .failed && record.attempts == 2 && record.errors.map(\.attempt) == [1, 2])
    }

    @Test("an attempt from before an operator's retry cannot write over the attempt of the same number begun after it")
    func attemptBeforeRetryIsStale() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let task = TaskMessage(id: "retried-1", type: "add", args: [], maxAttempts: 3, queuedAt: 500)
        #expect(try store.queue([task], topic: "t") == [.queued])
        // A runs attempt 1 and freezes; an operator cancels; B, taking the partition over,
        // finds A's attempt over (its heartbeat stale) and ends the task CANCELLED.
        #expect(try store.begin([task], partitions: [0], worker: "A", at: 1_000) == [.run(attempt: 1)])
        #expect(try store.cancel(["retried-1"], at: 10_000) == [.cancelRequested])
        let attemptOfA = RunningAttempt(worker: "A", startedAt: 1_000)
        #expect(try store.begin([task], partitions: [0], worker: "B", at: 20_000) == [.runningElsewhere(attemptOfA)])
        #expect(try store.begin([task], partitions: [0], worker: "B", at: 20_000, attemptsOver: [attemptOfA]) == [.alreadyTerminal])
        // The operator retries it: QUEUED, no attempt counted; B begins a new attempt 1.
        #expect(try store.requeue(["retried-1"], at: 25_000) == [.requeued])
        #expect(try store.begin([task], partitions: [0], worker: "B", at: 30_000) == [.run(attempt: 1)])
        // A wakes up and reports its attempt 1: a failure, then a success. Neither is written.
        let late = [AttemptOutcome(id: "retried-1", attempt: 1, kind: .retry, payload: "old error")]
        #expect(try store.finish(late, worker: "A", begunAt: 1_000, at: 40_000) == [false])
        let lateSuccess = [AttemptOutcome(id: "retried-1", attempt: 1, kind: .success, payload: "99")]
        #expect(try store.finish(lateSuccess, worker: "A", begunAt: 1_000, at: 40_001) == [false])
        var record = try #require(try store.record(id: "retried-1"))
        #expect(record.status == .processing && record.worker == "B" && record.attempts == 1 && record.startedAt == 30_000)
        #expect(!record.errors.contains { $0.error == "old error" })
        // B's own outcome is written.
        let mine = [AttemptOutcome(id: "retried-1", attempt: 1, kind: .success, payload: "3")]
        #expect(try store.finish(mine, worker: "B", begunAt: 30_000, at: 41_000) == [true])
        record = try #require(try store.record(id: "retried-1"))
        #expect(record.status == .success && record.result == .int(3) && record.worker == "B")
    }

    @Test("when the broker lost its log, a PROCESSING task whose message was last sent before the cutoff is published again; one sent after is not")
    func processingTaskFoundLost() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let waiting = TaskMessage(id: "lost-p1", type: "add", args: [], maxAttempts: 3, queuedAt: 1_000)
        let recent = TaskMessage(id: "lost-p2", type: "add", args: [], maxAttempts: 3, queuedAt: 1_800)
        #expect(try store.queue([waiting, recent], topic: "t") == [.queued, .queued])
        // lost-p1 failed attempt 1 and waits for its retry on a worker that then lost the
        // partition (the broker lost its log): its message is gone, and nothing else holds it.
        #expect(try store.begin([waiting, recent], partitions: [0, 0], worker: "w", at: 2_000) == [.run(attempt: 1), .run(attempt: 1)])
        let failed = [AttemptOutcome(id: "lost-p1", attempt: 1, kind: .retry, payload: "flaky")]
        #expect(try store.finish(failed, worker: "w", begunAt: 2_000, at: 2_100) == [true])
        // Not while the broker keeps its log: a long task on a broker whose end offsets read low
        // would get a copy, a new attempt, every 30 s.
        #expect(try store.takeLostFromEveryShard(topic: "t", queuedFrom: 0, to: 3_000, cutoff: 1_500, at: 3_000).isEmpty)
        #expect(try store.takeLostFromEveryShard(
            topic: "t", queuedFrom: 0, to: 3_000, cutoff: 1_500, brokerLostLog: true, at: 3_000).map(\.id) == ["lost-p1"])
        #expect(try store.record(id: "lost-p1")?.status == .processing)
        // Its copy arrives at the same worker: the next attempt; at another one it waits for w's.
        #expect(try store.begin([waiting], partitions: [1], worker: "w", at: 3_100) == [.run(attempt: 2)])
    }

    @Test("a replayed cancel of a SCHEDULED task answers as the first call did")
    func scheduledCancelReplayed() throws {
        let stack = try IntegrationStack()
        let store = stack.store
        let now = currentEpochMilliseconds()
        let task = TaskMessage(id: "later-1", type: "add", args: [], maxAttempts: 1, queuedAt: now)
        #expect(try store.queue([task], dueAt: [now + 3_600_000], topic: "t") == [.scheduled])
        #expect(try store.cancel(["later-1"], at: now + 1) == [.cancelled(from: .scheduled)])
        #expect(try store.cancel(["later-1"], at: now + 1) == [.cancelled(from: .scheduled)])
        #expect(try store.cancel(["later-1"], at: now + 2) == [.unchanged(.cancelled)])
    }
}

extension TaskStore {
    /// ``takeLost(topic:queuedFrom:to:cutoff:includingProcessing:at:shard:cursor:)`` over every shard and page, as the
    /// scheduler's walk makes its calls.
    func takeLostFromEveryShard(
        topic: String, queuedFrom from: Int64, to: Int64, cutoff: Int64, brokerLostLog: Bool = false, at now: Int64
    ) throws -> [TaskMessage] {
        var found: [TaskMessage] = []
        for shard in 0..<keys.shards {
            var cursor = ""
            repeat {
                let page = try takeLost(
                    topic: topic, queuedFrom: from, to: to, cutoff: cutoff, includingProcessing: brokerLostLog, at: now,
                    shard: shard, cursor: cursor)
                found += page.tasks
                cursor = page.cursor
            } while !cursor.isEmpty
        }
        return found
    }
}

