import Foundation

/// Turns task input into published tasks: parses each line, publishes what is
/// ready batch by batch, publishes end markers for `end`, and reports bad lines
/// as `file:line: reason` without stopping.
///
/// Publishing is pipelined: while one batch is written QUEUED to Redis and sent to
/// Kafka on a thread of its own, the next is read, parsed and serialized. At most one
/// batch is in flight, and tasks are still queued, published and reported in input order.
public final class TaskSubmission {
    private let publisher: TaskPublisher
    private let stream: TaskLineStream
    private let batchLimit: Int
    private let defaultStart: TaskStart?

    public struct Report: Sendable {
        /// Ids of the tasks that were published (or scheduled), in input order.
        public var published: [String] = []
        public var duplicates = 0
        public var publishFailures = 0
        public var badLines = 0
        public var endMarkers = 0
        /// `end` lines not published because tasks of the run were still SCHEDULED.
        public var endsWithheld = 0
    }

    /// A batch could not be published, and the run stopped there: nothing read after it was
    /// published.
    public struct Stopped: Error, CustomStringConvertible {
        public var cause: any Error
        /// Whether the batch was QUEUED in Redis before the failure (then the scheduler
        /// publishes again what did not reach the broker); when not, nothing of it was.
        public var batchQueued: Bool
        /// The first input line (`-`: standard input) not published: the batch's first, or
        /// the one after its last when it was queued.
        public var source: String
        public var line: Int
        /// How many tasks were published (or scheduled) before the batch; their ids were reported.
        public var publishedBefore: Int

        public var description: String {
            let place = source == "-" ? "line \(line) of standard input" : "\(source):\(line)"
            let rest = source == "-" ? "the input from line \(line) on" : "`tail -n +\(line) \(source) | yadtq-run`"
            let before = publishedBefore == 1 ? "1 task was" : "\(publishedBefore) tasks were"
            let batch = batchQueued
                ? " The batch just before that line is QUEUED (its ids are not printed): a worker's scheduler "
                    + "publishes what of it did not reach the broker. Before that batch, \(before) published"
                : " Before it, \(before) published"
            return "\(cause)\nThe run stopped: nothing from \(place) on was published.\(batch) (ids printed above). "
                + "Once that is mended, publish the rest: \(rest), then any input named after it."
        }
    }

    /// - Parameter defaultStart: when the tasks that set no `delay` or `at` of their own start
    ///   (`yadtq-run --delay`/`--at`); `nil` for at once.
    public init(publisher: TaskPublisher, stream: TaskLineStream, batchLimit: Int = 5000, defaultStart: TaskStart? = nil) {
        self.publisher = publisher
        self.stream = stream
        self.batchLimit = batchLimit
        self.defaultStart = defaultStart
    }

    /// Reads every input to its end, or throws ``Stopped`` at the first batch that cannot be published.
    /// - Parameters:
    ///   - onBatch: called with each batch's tasks once it is published, in input order.
    ///   - onProblem: called with each bad line or unreadable input, as one message.
    public func run(onBatch: ([PublishedTask]) -> Void, onProblem: (String) -> Void) throws -> Report {
        var report = Report()
        // The run's tasks SCHEDULED for later (and when each is due), until Redis shows them released.
        var scheduled: [(id: String, dueAt: Int64)] = []
        stream.start()
        let inFlight = BatchInFlight(publisher: publisher)
        var ready: [TaskDeclaration] = []
        // Where each task of `ready` was read.
        var readyPlaces: [(source: String, line: Int)] = []
        func collect() throws {
            let tasks: [PublishedTask]
            do {
                tasks = try inFlight.wait()
            } catch let failure as BatchFailure {
                let resume = inFlight.lines.firstUnpublished(batchQueued: failure.queued)
                throw Stopped(
                    cause: failure.cause, batchQueued: failure.queued, source: resume.source, line: resume.line,
                    publishedBefore: report.published.count)
            }
            guard !tasks.isEmpty else { return }
            for task in tasks {
                switch task.outcome {
                case .published: report.published.append(task.message.id)
                case .scheduled(let dueAt):
                    report.published.append(task.message.id)
                    scheduled.append((task.message.id, dueAt))
                case .duplicate: report.duplicates += 1
                case .failed: report.publishFailures += 1
                }
            }
            onBatch(tasks)
        }
        func flush() throws {
            guard !ready.isEmpty else { return }
            let batch = publisher.prepare(ready)
            let lines = BatchLines(first: readyPlaces[0], last: readyPlaces[readyPlaces.count - 1])
            for refusal in batch.refused {
                report.badLines += 1
                let place = readyPlaces[refusal.index]
                onProblem("\(place.source):\(place.line): \(refusal.reason)")
            }
            ready.removeAll(keepingCapacity: true)
            readyPlaces.removeAll(keepingCapacity: true)
            try collect()
            guard !batch.messages.isEmpty else { return }
            inFlight.start(batch, lines: lines)
        }
        while var lines = stream.availableBatch(limit: batchLimit) {
            if lines.isEmpty {
                // Nothing new yet: the batch in flight is seen through first, so a line
                // streamed in (`tail -f | yadtq-run`) is reported at once.
                try collect()
                guard let next = stream.nextBatch(limit: batchLimit) else { break }
                lines = next
            }
            for line in lines {
                do {
                    switch try line.result.get() {
                    case .blank: continue
                    case .task(var declaration):
                        if declaration.start == nil { declaration.start = defaultStart }
                        readyPlaces.append((line.source, line.number))
                        ready.append(declaration)
                    case .end:
                        // Everything before `end` is published first, so it precedes the markers on every partition.
                        try flush()
                        try collect()
                        // Every worker exits at the markers, and then no scheduler is left to
                        // release the tasks this run scheduled for later: they would wait for ever.
                        if !scheduled.isEmpty {
                            let statuses = try publisher.store.statuses(of: scheduled.map(\.id))
                            scheduled = zip(scheduled, statuses).filter { $0.1 == .scheduled }.map(\.0)
                        }
                        guard scheduled.isEmpty else {
                            report.endsWithheld += 1
                            let lastDue = scheduled.map(\.dueAt).max() ?? 0
                            onProblem(
                                "\(line.source):\(line.number): `end` not published: \(scheduled.count) task(s) of this run "
                                    + "are still SCHEDULED (the last is due \(timestampText(epochMilliseconds: lastDue))), "
                                    + "and workers stopped by `end` would leave them waiting. Once they have run, "
                                    + "publish it: echo end | yadtq-run --topic \(publisher.topic)")
                            continue
                        }
                        try publisher.publishEnd()
                        report.endMarkers += 1
                    }
                } catch let error as TaskLineError {
                    report.badLines += 1
                    onProblem("\(line.source):\(line.number): \(error)")
                }
            }
            try flush()
        }
        try collect()
        for problem in stream.inputProblems {
            report.badLines += 1
            onProblem(problem)
        }
        return report
    }
}

/// The one batch being published on a thread of its own while the next is prepared.
private final class BatchInFlight: @unchecked Sendable {
    // @unchecked Sendable: `outcome` is written by the work item on `queue` and read only
    // after `wait()` on that very item has returned; `item` and `lines` are used by the caller's
    // thread only.
    private let publisher: TaskPublisher
    private let queue = DispatchQueue(label: "yadtq.publish")
    private var item: DispatchWorkItem?
    private var outcome: Result<[PublishedTask], any Error>?
    /// Where the tasks of the batch in flight were read.
    private(set) var lines = BatchLines()

    init(publisher: TaskPublisher) {
        self.publisher = publisher
    }

    func start(_ batch: TaskPublisher.PreparedBatch, lines: BatchLines) {
        precondition(item == nil, "one batch in flight at a time")
        self.lines = lines
        let item = DispatchWorkItem { [self] in
            outcome = Result {
                let queued: TaskPublisher.QueuedBatch
                do { queued = try publisher.queue(batch) } catch { throw BatchFailure(queued: false, cause: error) }
                do { return try publisher.send(queued) } catch { throw BatchFailure(queued: true, cause: error) }
            }
        }
        self.item = item
        queue.async(execute: item)
    }

    /// Waits for the batch in flight and returns its tasks; none when nothing is in flight.
    func wait() throws -> [PublishedTask] {
        guard let item else { return [] }
        item.wait()
        self.item = nil
        defer { outcome = nil }
        return try outcome!.get()
    }
}

/// Where the first and the last task of a batch were read: input (`-`: standard input) and line.
private struct BatchLines {
    var first = (source: "", line: 0)
    var last = (source: "", line: 0)

    /// The first line not published when the batch failed: its own first, or the one after
    /// its last when it was QUEUED before the failure.
    func firstUnpublished(batchQueued: Bool) -> (source: String, line: Int) {
        batchQueued ? (last.source, last.line + 1) : first
    }
}

/// Why the batch in flight failed, and whether it was QUEUED in Redis first.
private struct BatchFailure: Error {
    var queued: Bool
    var cause: any Error
}
