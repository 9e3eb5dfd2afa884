import Foundation
import YADTQCore

/// What publishing the workload produced.
struct PublishRun {
    /// Every task's id, in workload order: `ids[i]` is task `i`.
    var ids: [String] = []
    /// Tasks that were not published (duplicates, broker refusals, unreadable lines).
    var problems: [String] = []
    /// Milliseconds since the epoch just before the first batch went out, on the clock
    /// the tasks' `queued_at`/`finished_at` use.
    var startedAt: Int64 = 0
    /// From the first batch until the broker acknowledged the last one.
    var elapsed: Duration = .zero

    /// Tasks per second handed to the queue.
    var rate: Double { Double(ids.count) / max(elapsed.inSeconds, 1e-9) }

    mutating func record(_ task: PublishedTask) {
        ids.append(task.message.id)
        switch task.outcome {
        case .published: break
        case .scheduled: problems.append("\(task.message.id): scheduled, not published")
        case .duplicate: problems.append("\(task.message.id): already existed, not published")
        case .failed(let reason): problems.append("\(task.message.id): \(reason)")
        }
    }
}

/// The two ways the benchmark offers its workload to the queue.
enum Publishing {
    /// Publishes as fast as `yadtq-run FILE` does, through the very code it runs
    /// (``TaskSubmission`` over a ``TaskLineStream``): the workload is written to a task
    /// file, and reading, parsing, QUEUED writes and Kafka batches are all measured.
    static func asFastAsPossible(_ workload: Workload, publisher: TaskPublisher) throws -> PublishRun {
        let file = FileManager.default.temporaryDirectory
            .appendingPathComponent("yadtq-bench-\(getpid())-\(UUID().uuidString).txt")
        var text = ""
        text.reserveCapacity(workload.count * 24)
        for index in 0..<workload.count {
            text += workload.line(index)
            text += "\n"
        }
        try text.write(to: file, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }

        var run = PublishRun()
        run.ids.reserveCapacity(workload.count)
        let submission = TaskSubmission(publisher: publisher, stream: TaskLineStream(inputs: [file.path]))
        let clock = ContinuousClock()
        run.startedAt = currentEpochMilliseconds()
        let start = clock.now
        _ = try submission.run(onBatch: { $0.forEach { run.record($0) } }, onProblem: { run.problems.append($0) })
        run.elapsed = clock.now - start
        return run
    }

    /// Holds an offered rate: whatever is due by now goes out as one batch (a producer
    /// streaming lines as they arrive, like `tail -f | yadtq-run`), then it sleeps until
    /// the next task is due. A publisher that cannot keep up falls behind, and the
    /// report's publish rate shows it.
    static func atFixedRate(_ workload: Workload, perSecond rate: Double, publisher: TaskPublisher) throws
        -> PublishRun
    {
        var run = PublishRun()
        run.ids.reserveCapacity(workload.count)
        let clock = ContinuousClock()
        run.startedAt = currentEpochMilliseconds()
        let start = clock.now
        var next = 0
        while next < workload.count {
            let elapsed = (clock.now - start).inSeconds
            // Capped like yadtq-run's batches, so a stalled publisher catches up in bounded steps.
            let due = min(workload.count, Int(elapsed * rate) + 1, next + batchLimit)
            if due <= next {
                Thread.sleep(forTimeInterval: Double(next) / rate - elapsed)
                continue
            }
            let batch = try (next..<due).map(workload.declaration)
            for task in try publisher.publish(batch) { run.record(task) }
            next = due
        }
        run.elapsed = clock.now - start
        return run
    }

    /// The most tasks one paced publish sends: `TaskSubmission`'s default batch limit.
    private static let batchLimit = 5000
}
