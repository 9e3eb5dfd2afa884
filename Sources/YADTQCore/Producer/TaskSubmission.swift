/// Turns task input into published tasks: parses each line, publishes what is
/// ready batch by batch, publishes end markers for `end`, and reports bad lines
/// as `file:line: reason` without stopping.
public final class TaskSubmission {
    private let publisher: TaskPublisher
    private let stream: TaskLineStream
    private let batchLimit: Int

    public struct Report: Sendable {
        /// Ids of the tasks that were published, in input order.
        public var published: [String] = []
        public var duplicates = 0
        public var publishFailures = 0
        public var badLines = 0
        public var endMarkers = 0
    }

    public init(publisher: TaskPublisher, stream: TaskLineStream, batchLimit: Int = 5000) {
        self.publisher = publisher
        self.stream = stream
        self.batchLimit = batchLimit
    }

    /// Reads every input to its end.
    /// - Parameters:
    ///   - onTask: called for each submitted task, in input order.
    ///   - onProblem: called with each bad line or unreadable input, as one message.
    public func run(onTask: (PublishedTask) -> Void, onProblem: (String) -> Void) throws -> Report {
        var report = Report()
        stream.start()
        var ready: [TaskDeclaration] = []
        func flush() throws {
            guard !ready.isEmpty else { return }
            for task in try publisher.publish(ready) {
                switch task.outcome {
                case .published: report.published.append(task.message.id)
                case .duplicate: report.duplicates += 1
                case .failed: report.publishFailures += 1
                }
                onTask(task)
            }
            ready.removeAll(keepingCapacity: true)
        }
        while let lines = stream.nextBatch(limit: batchLimit) {
            for line in lines {
                guard let text = String(validating: line.bytes, as: UTF8.self) else {
                    report.badLines += 1
                    onProblem("\(line.source):\(line.number): the line is not valid UTF-8")
                    continue
                }
                do {
                    switch try TaskLine.parse(line: text) {
                    case .blank: continue
                    case .task(let declaration): ready.append(declaration)
                    case .end:
                        // Everything before `end` is published first, so it precedes the markers on every partition.
                        try flush()
                        try publisher.publishEnd()
                        report.endMarkers += 1
                    }
                } catch {
                    report.badLines += 1
                    onProblem("\(line.source):\(line.number): \(error)")
                }
            }
            try flush()
        }
        for problem in stream.inputProblems {
            report.badLines += 1
            onProblem(problem)
        }
        return report
    }
}
