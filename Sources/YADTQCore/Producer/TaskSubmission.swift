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
    private let unresolvedFolder: String
    private let keepsIDs: Bool

    public struct Report: Sendable {
        /// How many tasks were published (or scheduled).
        public var published = 0
        public var duplicates = 0
        public var publishFailures = 0
        public var badLines = 0
        public var endMarkers = 0
        /// `end` lines not published because tasks of the run were still SCHEDULED.
        public var endsWithheld = 0
        /// Whether the ids are kept, for ``tasksToWaitFor``: only a run that waits needs them, and
        /// a run that kept them all the same grew with every task it published (a stream,
        /// `tail -f | yadtq-run`, for ever).
        public let keepsIDs: Bool
        /// With ``keepsIDs``: the ids of the tasks published (or scheduled) and of the
        /// duplicates, in input order.
        private var ids: [String] = []

        public init(keepsIDs: Bool) {
            self.keepsIDs = keepsIDs
        }

        /// Counts one task of a batch that was published.
        public mutating func count(_ task: PublishedTask) {
            switch task.outcome {
            case .published, .scheduled: published += 1
            case .duplicate: duplicates += 1
            case .failed:
                // FAILED already: nothing to wait for.
                publishFailures += 1
                return
            }
            if keepsIDs { ids.append(task.message.id) }
        }

        /// With ``keepsIDs`` (none without): the tasks `yadtq-run --wait` waits for, in input
        /// order, each once: those published (or scheduled), and the task already there behind
        /// each duplicate id. That task is the one the line names (a re-run of a file whose tasks
        /// still run, or failed, waits for them and reports them as it does its own); an id
        /// given twice in a run is the same task.
        public var tasksToWaitFor: [String] {
            var seen = Set<String>()
            return ids.filter { seen.insert($0).inserted }
        }
    }

    /// A batch could not be published, and the run stopped there: nothing read after it was
    /// published.
    public struct Stopped: Error, CustomStringConvertible {
        public var cause: any Error
        /// Whether the batch was QUEUED in Redis before the failure (then the scheduler
        /// publishes again what did not reach the broker). When not, it may have been all the
        /// same: see ``unresolved``.
        public var batchQueued: Bool
        /// The first input line (`-`: standard input) after the batch: where the rest begins.
        public var source: String
        public var line: Int
        /// How many tasks were published (or scheduled) before the batch; their ids were reported.
        public var publishedBefore: Int
        /// The batch's tasks when its write to Redis failed, which does not tell whether Redis
        /// queued them (a write sent to a Redis that stalls, or to some masters of a cluster
        /// and not the others, may have been): to be published again under the same ids.
        public var unresolved: UnresolvedTasks?

        public var description: String {
            let place = source == "-" ? "line \(line) of standard input" : "\(source):\(line)"
            let rest = source == "-" ? "the input from line \(line) on" : "`tail -n +\(line) \(source) | yadtq-run`"
            let before = publishedBefore == 1 ? "1 task was" : "\(publishedBefore) tasks were"
            guard let unresolved else {
                return "\(cause)\nThe run stopped: nothing from \(place) on was published. The batch just before "
                    + "that line is QUEUED (its ids are not printed): a worker's scheduler publishes what of it did not "
                    + "reach the broker. Before that batch, \(before) published (ids printed above). Once that is "
                    + "mended, publish the rest: \(rest), then any input named after it."
            }
            let count = unresolved.tasks.count == 1 ? "its task with its id" : "its \(unresolved.tasks.count) tasks with their ids"
            let again =
                unresolved.file.map { "from the file that holds \(count): `yadtq-run \($0)`" }
                ?? "from these lines, \(count) (\(unresolved.writeError ?? "")):\n\(unresolved.lines)"
            return "\(cause)\nThe run stopped: nothing from \(place) on was published. The batch just before "
                + "that line may have been queued all the same, or not: a write Redis did not answer cannot be told "
                + "from one it did not take (its ids are not printed). Before that batch, \(before) published (ids "
                + "printed above). Once that is mended, publish that batch again \(again) (a task already queued "
                + "answers DUPLICATE, so none is queued twice); then the rest: \(rest), then any input named after it."
        }
    }

    /// An `end` line's markers could not be published, and the run stopped there. Every task
    /// before it is published (their ids were printed); nothing after it was read.
    public struct EndNotPublished: Error, CustomStringConvertible {
        public var cause: any Error
        /// The input (`-`: standard input) and line of the `end`.
        public var source: String
        public var line: Int
        public var publishedBefore: Int
        public var topic: String

        public var description: String {
            let place = source == "-" ? "line \(line) of standard input" : "\(source):\(line)"
            let rest = source == "-" ? "the input after line \(line)" : "`tail -n +\(line + 1) \(source) | yadtq-run`"
            let before = publishedBefore == 1 ? "1 task" : "\(publishedBefore) tasks"
            return "\(cause)\nThe run stopped at the `end` of \(place): every task before it is published (\(before) "
                + "of this run, ids printed above), but its end marker did not reach every partition. Once that is mended, publish the "
                + "end marker again: `echo end | yadtq-run --topic \(topic)`; then the rest, if any: \(rest), then any "
                + "input named after it."
        }
    }

    /// The tasks of a batch whose outcome is unknown, each with its id, and the task file they
    /// were written to.
    public struct UnresolvedTasks: Sendable {
        public var tasks: [TaskDeclaration]
        /// The file that holds them, one task-file line each; `nil` when it could not be written.
        public var file: String?
        /// Why the file could not be written.
        public var writeError: String?

        /// The tasks as task-file lines (JSON), each with its id and attempts, and `at` for a
        /// task due later: `yadtq-run` reads them back as they were.
        public var lines: String {
            tasks.map { $0.json.jsonString + "\n" }.joined()
        }

        /// The tasks of `batch`, written to a new file in `folder`.
        init(_ batch: TaskPublisher.PreparedBatch, folder: String) {
            tasks = zip(batch.messages, batch.dueAt).map { message, dueAt in
                TaskDeclaration(
                    id: message.id, type: message.type, args: message.args, maxAttempts: message.maxAttempts,
                    start: dueAt > 0 ? .at(dueAt) : nil)
            }
            let path = (folder as NSString).appendingPathComponent("yadtq-run-unresolved-\(currentEpochMilliseconds()).txt")
            do {
                try Data(lines.utf8).write(to: URL(fileURLWithPath: path), options: .withoutOverwriting)
                file = path
            } catch {
                writeError = "\(path) could not be written: \(error.localizedDescription)"
            }
        }
    }

    /// - Parameter defaultStart: when the tasks that set no `delay` or `at` of their own start
    ///   (`yadtq-run --delay`/`--at`); `nil` for at once.
    /// - Parameter unresolvedFolder: where the tasks of a batch whose outcome is unknown are
    ///   written (see ``Stopped/unresolved``).
    /// - Parameter keepsIDs: whether the report keeps the tasks' ids, for waiting for them
    ///   (``Report/tasksToWaitFor``).
    public init(
        publisher: TaskPublisher, stream: TaskLineStream, batchLimit: Int = 5000, defaultStart: TaskStart? = nil,
        unresolvedFolder: String = ".", keepsIDs: Bool = false
    ) {
        self.keepsIDs = keepsIDs
        self.publisher = publisher
        self.stream = stream
        self.batchLimit = batchLimit
        self.defaultStart = defaultStart
        self.unresolvedFolder = unresolvedFolder
    }

    /// Reads every input to its end, or throws ``Stopped`` at the first batch that cannot be published.
    /// - Parameters:
    ///   - onBatch: called with each batch's tasks once it is published, in input order.
    ///   - onProblem: called with each bad line or unreadable input, as one message.
    public func run(onBatch: ([PublishedTask]) -> Void, onProblem: (String) -> Void) throws -> Report {
        var report = Report(keepsIDs: keepsIDs)
        // The run's tasks SCHEDULED for later, until Redis shows them released.
        var scheduled = ScheduledTasks()
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
                let last = inFlight.lastLine
                throw Stopped(
                    cause: failure.cause, batchQueued: failure.queued, source: last.source, line: last.line + 1,
                    publishedBefore: report.published,
                    unresolved: failure.queued ? nil : UnresolvedTasks(failure.batch, folder: unresolvedFolder))
            }
            guard !tasks.isEmpty else { return }
            for task in tasks {
                report.count(task)
                if case .scheduled(let dueAt) = task.outcome { scheduled.add(id: task.message.id, dueAt: dueAt) }
            }
            if let due = scheduled.dueForLook(now: currentEpochMilliseconds()) {
                scheduled.looked(up: due, statuses: due.isEmpty ? [] : try publisher.store.statuses(of: due))
            }
            onBatch(tasks)
        }
        func flush() throws {
            guard !ready.isEmpty else { return }
            let batch = publisher.prepare(ready)
            let lastLine = readyPlaces[readyPlaces.count - 1]
            for refusal in batch.refused {
                report.badLines += 1
                let place = readyPlaces[refusal.index]
                onProblem("\(place.source):\(place.line): \(refusal.reason)")
            }
            ready.removeAll(keepingCapacity: true)
            readyPlaces.removeAll(keepingCapacity: true)
            try collect()
            guard !batch.messages.isEmpty else { return }
            inFlight.start(batch, lastLine: lastLine)
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
                        if scheduled.count > 0 {
                            let ids = scheduled.ids
                            scheduled.looked(up: ids, statuses: try publisher.store.statuses(of: ids))
                        }
                        guard scheduled.count == 0 else {
                            report.endsWithheld += 1
                            let lastDue = scheduled.lastDue ?? 0
                            onProblem(
                                "\(line.source):\(line.number): `end` not published: \(scheduled.count) task(s) of this run "
                                    + "are still SCHEDULED (the last is due \(timestampText(epochMilliseconds: lastDue))), "
                                    + "and workers stopped by `end` would leave them waiting. Once they have run, "
                                    + "publish it: echo end | yadtq-run --topic \(publisher.topic)")
                            continue
                        }
                        do {
                            try publisher.publishEnd()
                        } catch {
                            throw EndNotPublished(
                                cause: error, source: line.source, line: line.number,
                                publishedBefore: report.published, topic: publisher.topic)
                        }
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
    // after `wait()` on that very item has returned; `item` and `lastLine` are used by the caller's
    // thread only.
    private let publisher: TaskPublisher
    private let queue = DispatchQueue(label: "yadtq.publish")
    private var item: DispatchWorkItem?
    private var outcome: Result<[PublishedTask], any Error>?
    /// Where the last task of the batch in flight was read: input (`-`: standard input) and line.
    private(set) var lastLine = (source: "", line: 0)

    init(publisher: TaskPublisher) {
        self.publisher = publisher
    }

    func start(_ batch: TaskPublisher.PreparedBatch, lastLine: (source: String, line: Int)) {
        precondition(item == nil, "one batch in flight at a time")
        self.lastLine = lastLine
        let item = DispatchWorkItem { [self] in
            outcome = Result {
                let queued: TaskPublisher.QueuedBatch
                do { queued = try publisher.queue(batch) } catch { throw BatchFailure(batch: batch, queued: false, cause: error) }
                do { return try publisher.send(queued) } catch { throw BatchFailure(batch: batch, queued: true, cause: error) }
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

/// Why the batch in flight failed, and whether it was QUEUED in Redis first.
private struct BatchFailure: Error {
    var batch: TaskPublisher.PreparedBatch
    var queued: Bool
    var cause: any Error
}
