import Testing
import YADTQCore

@Suite("Batch state machine: the worker's rules and chaos interleavings")
struct BatchStateMachineTests {
    @Test("a batch begins, runs and commits past every terminal task")
    func happyPath() {
        var sim = WorkerSimulation(partitions: 2)
        sim.assign([0, 1])
        for partition in [0, 1, 0] { sim.publish(to: partition) }
        sim.drain()
        #expect(sim.everyTaskTerminal)
        #expect(sim.committed == [2, 1])
        #expect(sim.violations.isEmpty)
    }

    @Test("partitions revoked are committed before they go; partitions lost (session timed out, rebalance failed) go without a commit")
    func lostPartitionsGoWithoutCommit() {
        for lost in [false, true] {
            var sim = WorkerSimulation(partitions: 1)
            sim.losesCommits = true
            sim.assign([0])
            sim.publish(to: 0)
            sim.drain()
            #expect(sim.everyTaskTerminal)
            #expect(sim.committed == [0], "the commit after the batch was lost")
            sim.revoke([0], lost: lost)
            #expect(sim.committed == (lost ? [0] : [1]), "lost: \(lost)")
            #expect(sim.violations.isEmpty)
        }
    }

    @Test("a failing task waits for its retry without holding up the others, and its offset stays uncommitted")
    func retryDoesNotBlock() {
        var sim = WorkerSimulation(partitions: 1, batchSize: 10)
        sim.assign([0])
        let slow = sim.publish(to: 0, behaviour: .init(failures: 1))
        sim.publish(to: 0)
        sim.poll()
        sim.completeBatch()
        #expect(sim.records[slow]?.status == .processing)
        #expect(sim.committed == [0], "nothing committed past the waiting retry")
        #expect(sim.machine.nextRetryDue == sim.now + .milliseconds(100))
        sim.poll()
        #expect(sim.batch == nil, "the retry is not due yet")
        sim.advance(.milliseconds(100))
        sim.poll()
        sim.completeBatch()
        #expect(sim.records[slow]?.status == .success)
        #expect(sim.committed == [2])
        #expect(sim.violations.isEmpty)
    }

    @Test("after the last attempt a task fails for good (with a dead-letter copy)")
    func lastAttemptFails() {
        var batch = TaskBatch(
            tasks: [task("a", maxAttempts: 2)], markers: [], waitingPartitions: [], retry: RetryPolicy())
        let runnable = batch.begun([.run(attempt: 2)])
        let record = batch.ran(
            runnable.map { _ in .failure(PluginFailure(message: "boom", isPermanent: false), logs: [], progress: nil) },
            now: .now)
        #expect(record.outcomes.map(\.kind) == [.failed])
        #expect(record.deadLetters.map(\.error) == ["boom"])
        batch.finished(written: [true])
        batch.markersRecorded()
        #expect(batch.result.failed == 1 && batch.result.retries.isEmpty)
    }

    @Test("an error over ErrorText's limit is trimmed before Redis and the dead-letter copy, and says by how much")
    func hugeErrorTrimmed() {
        var batch = TaskBatch(
            tasks: [task("retried"), task("last", maxAttempts: 1)], markers: [], waitingPartitions: [], retry: RetryPolicy())
        let runnable = batch.begun([.run(attempt: 1), .run(attempt: 1)])
        let huge = PluginFailure(message: String(repeating: "E", count: 1_100_000), isPermanent: false)
        let record = batch.ran(runnable.map { _ in .failure(huge, logs: [], progress: nil) }, now: .now)
        #expect(record.outcomes.map(\.kind) == [.retry, .failed])
        for text in record.outcomes.map(\.payload) + record.deadLetters.map(\.error) {
            #expect(text.utf8.count <= ErrorText.maximumBytes)
            #expect(text.hasPrefix("EEEE") && text.hasSuffix("E… [trimmed: 1100000 bytes, the first 65486 kept]"))
        }
        #expect(record.deadLetters.count == 1)
    }

    @Test("the record says how each attempt that ran ended, in order, and which dead letters never ran (for the metrics)")
    func recordOfAttempts() {
        var batch = TaskBatch(
            tasks: [task("used-up"), task("ok"), task("again"), task("last", maxAttempts: 2), task("stopped")], markers: [],
            waitingPartitions: [], retry: RetryPolicy())
        let runnable = batch.begun([.exhausted(attempts: 3), .run(attempt: 1), .run(attempt: 1), .run(attempt: 2), .run(attempt: 1)])
        #expect(runnable.map(\.message.id) == ["ok", "again", "last", "stopped"])
        let boom = PluginFailure(message: "boom", isPermanent: false)
        let record = batch.ran(
            [
                .success(.int(1), logs: [], progress: nil), .failure(boom, logs: [], progress: nil),
                .failure(boom, logs: [], progress: nil),
                .failure(PluginFailure(message: "cancelled", isPermanent: false, isCancelled: true), logs: [], progress: nil),
            ], now: .now)
        #expect(record.attemptKinds == [.success, .retry, .failed, .cancelled])
        #expect(record.deadLetters.map(\.task.message.id) == ["used-up", "last"])
        #expect(record.failedWithoutAttempt == 1)
    }

    @Test("an attempt stopped by a cancel ends CANCELLED: no retry, no dead-letter copy, its offset settled")
    func cancelledAttempt() {
        var batch = TaskBatch(tasks: [task("a")], markers: [], waitingPartitions: [], retry: RetryPolicy())
        let runnable = batch.begun([.run(attempt: 1)])
        let cancelled = PluginFailure(message: "cancelled while running", isPermanent: false, isCancelled: true)
        let record = batch.ran(runnable.map { _ in .failure(cancelled, logs: ["a line"], progress: 0.5) }, now: .now)
        #expect(record.outcomes.map(\.kind) == [.cancelled])
        #expect(record.outcomes.first?.logs == ["a line"] && record.outcomes.first?.progress == 0.5)
        #expect(record.deadLetters.isEmpty)
        batch.finished(written: [true])
        batch.markersRecorded()
        #expect(batch.result.cancelled == 1 && batch.result.failed == 0 && batch.result.retries.isEmpty)
        #expect(batch.result.settled == [TaskPosition(partition: 0, offset: 0)])
    }

    @Test("a failed attempt of a task cancelled meanwhile ends CANCELLED: no retry, no dead-letter copy")
    func failedWhileCancelled() {
        var batch = TaskBatch(
            tasks: [task("retried"), task("last", maxAttempts: 1), task("kept")], markers: [], waitingPartitions: [],
            retry: RetryPolicy())
        let runnable = batch.begun([.run(attempt: 1), .run(attempt: 1), .run(attempt: 1)])
        let boom = PluginFailure(message: "boom", isPermanent: false)
        let ran = batch.ran(runnable.map { _ in .failure(boom, logs: [], progress: nil) }, now: .now)
        #expect(ran.outcomes.map(\.kind) == [.retry, .failed, .retry] && ran.deadLetters.count == 1)
        #expect(batch.failedAttempts == ["retried", "last", "kept"])
        let record = batch.cancelsRead(["retried", "last"])
        #expect(record.outcomes.map(\.kind) == [.cancelled, .cancelled, .retry])
        #expect(record.deadLetters.isEmpty && record.attemptKinds == [.cancelled, .cancelled, .retry])
        batch.finished(written: [true, true, true])
        batch.markersRecorded()
        #expect(batch.result.cancelled == 2 && batch.result.retries.map(\.task.message.id) == ["kept"])
    }

    @Test("an already terminal task is skipped and never written again; its offset is settled")
    func terminalSkipped() {
        var batch = TaskBatch(tasks: [task("a")], markers: [], waitingPartitions: [], retry: RetryPolicy())
        #expect(batch.begun([.alreadyTerminal]).isEmpty)
        #expect(batch.ran([], now: .now).outcomes.isEmpty)
        batch.finished(written: [])
        #expect(batch.result.settled == [TaskPosition(partition: 0, offset: 0)])
    }

    @Test("an outcome Redis refused (attempt taken over) settles nothing: its task is awaited")
    func refusedOutcome() {
        var batch = TaskBatch(tasks: [task("a")], markers: [], waitingPartitions: [], retry: RetryPolicy())
        _ = batch.begun([.run(attempt: 1)])
        _ = batch.ran([.success(.int(1), logs: [], progress: nil)], now: .now)
        batch.finished(written: [false])
        #expect(batch.result.settled.isEmpty && batch.result.succeeded == 0)
        #expect(batch.result.refused.map(\.message.id) == ["a"])
    }

    @Test("a message published twice in one batch runs once, and its outcome settles both positions")
    func sameTaskTwiceInOneBatch() {
        var sim = WorkerSimulation(partitions: 2, batchSize: 10)
        sim.assign([0, 1])
        let id = sim.publish(to: 0)
        let failing = sim.publish(to: 1, behaviour: .init(failures: 1))
        sim.publishCopy(of: id, to: 1)
        sim.publishCopy(of: failing, to: 0)
        sim.publishCopy(of: id, to: 0)
        sim.poll()
        #expect(sim.batch?.tasks.map(\.message.id) == [id, failing])
        sim.completeBatch()
        #expect(sim.records[id]?.attempts == 1 && sim.records[id]?.terminalWrites == 1)
        #expect(sim.committed == [1, 0], "the failing task's copy waits with it for its retry")
        sim.drain()
        #expect(sim.records[failing]?.attempts == 2 && sim.records[failing]?.status == .success)
        #expect(sim.committed == [3, 2] && sim.violations.isEmpty)
    }

    @Test("an outcome refused because another worker took the task over: its offset commits once the task is terminal")
    func takenOverWhileRunning() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.publish(to: 0)
        sim.poll()
        sim.completeBatch(whileRunning: { $0.otherWorkerBegins(id) })
        #expect(sim.committed == [0] && sim.machine.awaitsTasks)
        #expect(sim.machine.nextDue == sim.now, "read at the next batch")
        sim.poll()
        #expect(sim.batch?.statusChecks == [id])
        sim.completeBatch()
        #expect(sim.committed == [0], "still PROCESSING elsewhere")
        #expect(sim.machine.nextDue == sim.now + .seconds(1))
        sim.otherWorkersFinish()
        sim.drain()
        #expect(sim.committed == [2] && !sim.machine.awaitsTasks && sim.violations.isEmpty)
    }

    @Test("a task another worker still runs is not run here: begun again after a while, its offset held until the other one ends it")
    func runningElsewhere() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.otherWorkerBegins(id)
        sim.publish(to: 0)
        sim.poll()
        sim.completeBatch()
        #expect(sim.records[id]?.attempts == 1, "no second attempt")
        #expect(sim.committed == [0])
        #expect(sim.machine.nextRetryDue == sim.now + AttemptElsewhere.recheck)
        sim.advance(AttemptElsewhere.recheck)
        sim.poll()
        sim.completeBatch()
        #expect(sim.records[id]?.attempts == 1 && sim.committed == [0], "still running there")
        sim.otherWorkersFinish()
        sim.advance(AttemptElsewhere.recheck)
        sim.poll()
        sim.completeBatch()
        #expect(sim.records[id]?.status == .success && sim.records[id]?.attempts == 1)
        #expect(sim.committed == [2] && sim.violations.isEmpty)
    }

    @Test("a stopping worker does not wait for another worker's attempt: it leaves that task to the partition's next owner")
    func stopLeavesTaskRunningElsewhere() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.otherWorkerBegins(id)
        sim.poll()
        sim.completeBatch()
        #expect(!sim.machine.waitingRetries.isEmpty)
        sim.stop()
        #expect(sim.exited && sim.committed == [0])
    }

    @Test("a worker asked to stop while its batch runs does not wait for the tasks that batch found running elsewhere")
    func stopDuringBatchLeavesTaskRunningElsewhere() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.otherWorkerBegins(id)
        sim.poll()
        sim.stop()
        #expect(sim.batch != nil && !sim.exited)
        sim.completeBatch()
        #expect(sim.exited && sim.committed == [0] && sim.machine.waitingRetries.isEmpty)
    }

    @Test("a stopping worker waits for its retries without spinning on the tasks it awaited")
    func stoppingDoesNotSpin() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.publish(to: 0, behaviour: .init(failures: 1))
        sim.poll()
        sim.completeBatch(whileRunning: { $0.otherWorkerBegins(id) })
        #expect(sim.machine.awaitsTasks && !sim.machine.waitingRetries.isEmpty)
        sim.stop()
        #expect(sim.batch == nil && !sim.exited, "the retry is not due yet")
        #expect(sim.machine.pollWait(now: sim.now) > .zero, "the loop sleeps until the retry is due")
    }

    @Test("an awaited task is dropped with its partition")
    func awaitedRevoked() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.poll()
        sim.completeBatch(whileRunning: { $0.otherWorkerBegins(id) })
        sim.revoke([0])
        #expect(!sim.machine.awaitsTasks && sim.machine.nextDue == nil)
    }

    /// A worker that ran `tasks` tasks of one partition, whose commits the broker lost.
    private func lostCommits(tasks: Int) -> WorkerSimulation {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        sim.losesCommits = true
        for _ in 0..<tasks { sim.publish(to: 0) }
        sim.drain()
        #expect(sim.everyTaskTerminal && sim.committed == [0], "the broker lost the commit")
        sim.losesCommits = false
        return sim
    }

    @Test("a commit the broker lost is sent again within the recommit interval, on an idle partition too")
    func lostCommitSentAgain() {
        var sim = lostCommits(tasks: 2)
        sim.poll()
        #expect(sim.committed == [0], "not before the interval")
        sim.advance(.seconds(11))
        sim.poll()
        #expect(sim.committed == [2])
        #expect(sim.violations.isEmpty)
    }

    @Test("a commit the broker reports failed is sent again after the retry delay, not the recommit interval")
    func failedCommitSentSoon() {
        var sim = lostCommits(tasks: 1)
        sim.machine.commitFailed(now: sim.now)
        sim.advance(.milliseconds(500))
        sim.poll()
        #expect(sim.committed == [0], "not before the retry delay")
        sim.advance(.milliseconds(500))
        sim.poll()
        #expect(sim.committed == [1], "a second after the failure, not ten")
        #expect(sim.violations.isEmpty)
    }

    @Test("crash mid-batch: the redelivered task continues its attempt count")
    func crashMidBatch() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.poll()
        sim.crash(afterBegin: true)
        #expect(sim.records[id]?.attempts == 1 && sim.records[id]?.status == .processing)
        sim.drain()
        #expect(sim.records[id]?.attempts == 2 && sim.records[id]?.status == .success)
        #expect(sim.committed == [1] && sim.violations.isEmpty)
    }

    @Test("crashes on every attempt exhaust the task: it fails instead of crash-looping")
    func exhaustedByCrashes() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        for _ in 0..<3 {
            sim.poll()
            sim.crash(afterBegin: true)
        }
        sim.drain()
        #expect(sim.records[id]?.status == .failed && sim.records[id]?.attempts == 3)
        #expect(sim.violations.isEmpty)
    }

    @Test("redelivery of a finished task skips it")
    func redeliverySkips() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        let id = sim.publish(to: 0)
        sim.poll()
        sim.completeBatch()
        sim.committed = [0]  // the commit was lost
        sim.crash(afterBegin: false)
        sim.drain()
        #expect(sim.records[id]?.terminalWrites == 1 && sim.committed == [1])
        #expect(sim.violations.isEmpty)
    }

    @Test("rebalance during a retry wait: the retry is dropped and the next owner redelivers")
    func rebalanceDuringRetryWait() {
        var sim = WorkerSimulation(partitions: 2)
        sim.assign([0, 1])
        let id = sim.publish(to: 0, behaviour: .init(failures: 1))
        sim.publish(to: 1)
        sim.poll()
        sim.completeBatch()
        #expect(sim.machine.waitingRetries.count == 1)
        sim.revoke([0])
        #expect(sim.machine.waitingRetries.isEmpty)
        #expect(sim.committed == [0, 1])
        sim.assign([0])
        sim.drain()
        #expect(sim.records[id]?.status == .success && sim.records[id]?.attempts == 2)
        #expect(sim.violations.isEmpty)
    }

    @Test("rebalance during a batch: what it settles on a revoked partition is dropped")
    func rebalanceDuringBatch() {
        var sim = WorkerSimulation(partitions: 2)
        sim.assign([0, 1])
        sim.publish(to: 0, behaviour: .init(failures: 1))
        sim.publish(to: 1)
        sim.poll()
        sim.revoke([0])
        sim.assign([0])
        sim.completeBatch()
        #expect(sim.machine.waitingRetries.isEmpty, "partition 0 is redelivered, not retried from the old batch")
        sim.drain()
        #expect(sim.everyTaskTerminal && sim.committed == [1, 1] && sim.violations.isEmpty)
    }

    @Test("an end marker behind a retry is held until the retry is terminal")
    func endMarkerBehindRetry() {
        var sim = WorkerSimulation(partitions: 1, batchSize: 10)
        sim.assign([0])
        sim.publish(to: 0, behaviour: .init(failures: 1))
        sim.publishEnd(to: 0)
        sim.poll()
        sim.completeBatch()
        #expect(sim.recordedMarkers.isEmpty)
        #expect(sim.committed == [0])
        sim.drain()
        #expect(sim.recordedMarkers == ["m1": [0]])
        #expect(sim.committed == [2] && sim.violations.isEmpty)
    }

    @Test("an end marker behind a task another worker took over is held until that task is terminal")
    func endMarkerBehindAwaitedTask() {
        var sim = WorkerSimulation(partitions: 2, batchSize: 10)
        sim.assign([0, 1])
        let id = sim.publish(to: 0)
        sim.publishEnd(to: 0)
        sim.publishEnd(to: 1)
        sim.poll()
        sim.completeBatch(whileRunning: { $0.otherWorkerBegins(id) })
        #expect(sim.recordedMarkers == ["m1": [1]], "partition 0's marker waits: its task runs elsewhere")
        sim.poll()
        #expect(sim.batch?.statusChecks == [id])
        sim.completeBatch()
        #expect(sim.recordedMarkers == ["m1": [1]], "still PROCESSING elsewhere")
        #expect(sim.committed == [0, 1])
        sim.otherWorkersFinish()
        sim.drain()
        #expect(sim.recordedMarkers == ["m1": [0, 1]])
        #expect(sim.committed == [2, 1] && sim.violations.isEmpty)
    }

    @Test("a poison message fails at once and its offset is committed")
    func poison() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        sim.publishPoison(to: 0)
        sim.publish(to: 0)
        sim.drain()
        #expect(sim.records["poison-t-0-0"]?.status == .failed)
        #expect(sim.records["poison-t-0-0"]?.attempts == 1)
        #expect(sim.committed == [2] && sim.violations.isEmpty)
    }

    @Test("a long batch pauses the partitions and resumes them when done")
    func longBatchPauses() {
        var sim = WorkerSimulation(partitions: 2)
        sim.assign([0, 1])
        sim.publish(to: 0)
        sim.poll()
        #expect(sim.machine.batchStillRunning(now: sim.now + .milliseconds(100)).isEmpty)
        sim.perform(sim.machine.batchStillRunning(now: sim.now + .milliseconds(600)))
        #expect(sim.paused == [0, 1])
        #expect(sim.machine.batchStillRunning(now: sim.now + .milliseconds(900)).isEmpty, "paused once")
        sim.completeBatch()
        #expect(sim.paused.isEmpty)
    }

    @Test("Redis unreachable past the limit: commits what is terminal, leaves, rejoins when Redis answers")
    func redisOutage() {
        var sim = WorkerSimulation(partitions: 1, batchSize: 1)
        sim.assign([0])
        sim.publish(to: 0)
        let stuck = sim.publish(to: 0)
        sim.poll()
        sim.completeBatch()
        sim.poll()
        sim.abandonBatch(afterBegin: true)
        #expect(sim.left && sim.machine.membership == .cutOff)
        #expect(sim.committed == [1], "only the terminal task is committed")
        #expect(sim.records[stuck]?.status == .processing)
        sim.poll()
        #expect(sim.batch == nil, "no work while out of the group")
        sim.perform(sim.machine.redisReachable())
        #expect(!sim.left && sim.machine.membership == .member)
        sim.assign([0])
        sim.drain()
        #expect(sim.records[stuck]?.status == .success && sim.committed == [2] && sim.violations.isEmpty)
    }

    @Test("a stop finishes the batch in hand and the retries, commits, leaves and exits")
    func stopDrainsRetries() {
        var sim = WorkerSimulation(partitions: 1, batchSize: 10)
        sim.assign([0])
        let id = sim.publish(to: 0, behaviour: .init(failures: 1))
        sim.poll()
        sim.stop()
        #expect(!sim.exited)
        sim.completeBatch()
        #expect(!sim.exited, "a retry still waits")
        sim.publish(to: 0)
        sim.advance(.milliseconds(100))
        sim.poll()
        #expect(sim.batch?.tasks.map(\.message.id) == [id], "nothing new is taken")
        sim.completeBatch()
        #expect(sim.exited && sim.left && sim.committed == [1] && sim.violations.isEmpty)
    }

    @Test("a stop while cut off from Redis exits at once")
    func stopDuringOutage() {
        var sim = WorkerSimulation(partitions: 1)
        sim.assign([0])
        sim.publish(to: 0)
        sim.poll()
        sim.abandonBatch(afterBegin: false)
        sim.stop()
        #expect(sim.exited)
    }

    private func task(_ id: String, maxAttempts: Int = 3) -> BatchTask {
        BatchTask(
            message: TaskMessage(id: id, type: "work", args: [], maxAttempts: maxAttempts, queuedAt: 0),
            position: TaskPosition(partition: 0, offset: 0))
    }
}
