import Testing
import YADTQCore

/// How `yadtq-run --wait` counts the statuses it reads (``TaskWaiter/Progress``).
@Suite("Waiting rules")
struct WaitingRulesTests {
    @Test("a terminal status ends a task's wait, a status before it keeps it, an unknown id is a task ended and pruned")
    func statusesCounted() {
        var progress = TaskWaiter.Progress(total: 7)
        let running = progress.count([.success, .failed, .cancelled, nil, .queued, .processing, .scheduled])
        #expect(running == [false, false, false, false, true, true, true])
        #expect((progress.succeeded, progress.failed, progress.pruned, progress.done) == (1, 2, 1, 4))
        #expect(progress.count([.success, .success, nil]) == [false, false, false])
        #expect(progress.done == 7)
    }

    @Test("a run is a success only when every task is known to have succeeded: a pruned one's outcome is unknown")
    func prunedIsNotSuccess() {
        var progress = TaskWaiter.Progress(total: 2)
        _ = progress.count([.success, .success])
        #expect(progress.allSucceeded)
        var pruned = TaskWaiter.Progress(total: 2)
        _ = pruned.count([.success, nil])
        #expect(!pruned.allSucceeded)
    }

    @Test("the summary says how many were pruned before they were read, and how to keep them readable")
    func summarySaysPruned() {
        var progress = TaskWaiter.Progress(total: 3)
        _ = progress.count([.success, .failed])
        #expect(progress.summary == "3 tasks: 1 succeeded, 1 failed in 0.00 s")
        _ = progress.count([nil])
        let lines = progress.summary.split(separator: "\n")
        #expect(lines.first == "3 tasks: 1 succeeded, 1 failed, 1 pruned before they were read in 0.00 s")
        #expect(lines.last?.contains("1 task(s) ended and their records were deleted") == true, "\(progress.summary)")
        #expect(lines.last?.contains("a longer --keep-succeeded and --keep-failed") == true, "\(progress.summary)")
    }

    @Test("--wait waits for each task published or scheduled and for the one behind each duplicate id, each once, in input order; not for one FAILED at its publish")
    func tasksToWaitFor() {
        func task(_ id: String, _ outcome: PublishedTask.Outcome) -> PublishedTask {
            PublishedTask(message: TaskMessage(id: id, type: "add", args: [], maxAttempts: 3, queuedAt: 1), outcome: outcome)
        }
        var report = TaskSubmission.Report(keepsIDs: true)
        let tasks = [
            task("earlier", .duplicate), task("a", .published(partition: 0)), task("b", .scheduled(dueAt: 5)),
            task("c", .failed("refused")), task("a", .duplicate), task("earlier", .duplicate),
        ]
        for published in tasks { report.count(published) }
        #expect(report.tasksToWaitFor == ["earlier", "a", "b"])
        #expect((report.published, report.duplicates, report.publishFailures) == (2, 3, 1))
    }

    @Test("a run that does not wait keeps no ids, only counts: its memory does not grow with its tasks")
    func noIDsWithoutWaiting() {
        var report = TaskSubmission.Report(keepsIDs: false)
        for index in 0..<1000 {
            let message = TaskMessage(id: "t\(index)", type: "add", args: [], maxAttempts: 3, queuedAt: 1)
            report.count(PublishedTask(message: message, outcome: index % 10 == 0 ? .duplicate : .published(partition: 0)))
        }
        #expect((report.published, report.duplicates) == (900, 100))
        #expect(report.tasksToWaitFor.isEmpty)
    }

    @Test("the --results line of a pruned task says its outcome is no longer known")
    func prunedLine() {
        let line = TaskTable.pruned(id: "gone-1")
        #expect(line.hasPrefix("gone-1 "))
        #expect(line.contains("PRUNED") && line.contains("its outcome is no longer known"), "\(line)")
    }
}

/// What a run keeps of the tasks it scheduled for later, for its `end` lines (``ScheduledTasks``).
@Suite("Scheduled tasks of a run")
struct ScheduledTasksTests {
    @Test("once the tasks kept reach the next look, the due ones are looked up and the released forgotten; the next look comes when they have doubled")
    func boundedByWhatIsStillScheduled() {
        var scheduled = ScheduledTasks(firstLook: 4)
        for (id, dueAt) in [("a", 10), ("b", 20), ("c", 30)] { scheduled.add(id: id, dueAt: Int64(dueAt)) }
        #expect(scheduled.dueForLook(now: 100) == nil, "not before the first look")
        scheduled.add(id: "d", dueAt: 1000)
        let due = scheduled.dueForLook(now: 100)
        #expect(due == ["a", "b", "c"], "only a task due can have been released")
        scheduled.looked(up: ["a", "b", "c"], statuses: [.queued, .scheduled, .cancelled])
        #expect(scheduled.ids == ["b", "d"])
        #expect(scheduled.lastDue == 1000)
        scheduled.add(id: "e", dueAt: 2000)
        #expect(scheduled.dueForLook(now: 100) == nil, "the next look once 4 are kept")
        scheduled.add(id: "f", dueAt: 3000)
        #expect(scheduled.dueForLook(now: 100) == ["b"])
        scheduled.looked(up: ["b"], statuses: [.scheduled])
        for id in ["g", "h"] { scheduled.add(id: id, dueAt: 4000) }
        #expect(scheduled.dueForLook(now: 100) == nil, "4 kept after the look: the next at 8")
        scheduled.looked(up: scheduled.ids, statuses: Array(repeating: nil, count: scheduled.count))
        #expect(scheduled.count == 0, "a record gone is a task ended")
    }
}
