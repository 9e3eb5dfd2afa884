import ArgumentParser
import Foundation
import YADTQCommandLine
import YADTQCore

@main
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-run",
        abstract: "Publish tasks from task files, folders or standard input.",
        discussion: """
            Each line is a task: `add 1 2`, `concat "hello world" "!"`, or a JSON object \
            {"type": "mul", "args": [3, 4]}. `end` tells every worker to finish and exit. \
            Reads standard input (line by line, as it arrives) when no file is given.
            """)

    @Argument(help: "Task files, folders of *.txt files, or - for standard input.")
    var inputs: [String] = []

    @Option(help: "Topic to publish to (env YADTQ_TOPIC).")
    var topic: String?

    @Option(help: "Partitions for the topic when yadtq-run has to create it.")
    var partitions = TaskPublisher.defaultPartitions

    @Flag(help: "Show progress until every task sent is terminal, then a summary.")
    var wait = false

    @Flag(help: "With --wait: end with a table of every task's status and result.")
    var results = false

    @Flag(help: "Print one JSON object per task instead of its id.")
    var json = false

    @Option(help: "Start every task this long from now (unless it gives its own delay or at), e.g. 30s, 5m, 2h, 1d.")
    var delay: String?

    @Option(help: "Start every task at this time (unless it gives its own delay or at): RFC 3339, e.g. 2026-12-01T09:30:00Z, or epoch milliseconds.")
    var at: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
        guard !results || wait else {
            throw ValidationError("--results needs --wait: the table is printed once every task is terminal")
        }
        try validateTopic(topic, "--topic")
        _ = try start()
    }

    /// `--delay` or `--at`, read by the same rules as a task's own `"delay"` and `"at"`.
    private func start() throws -> TaskStart? {
        if delay != nil && at != nil { throw ValidationError("give --delay or --at, not both") }
        do throws(TaskLineError) {
            if let delay { return try TaskStart.readDelay(.string(delay)) }
            if let at { return try TaskStart.readAt(.string(at)) }
            return nil
        } catch {
            throw ValidationError("--\(delay != nil ? "delay" : "at"): \(error.reason)")
        }
    }

    func run() throws {
        // A reader that stops early (`yadtq-run tasks.txt | head -1`) must not stop the run
        // between a batch QUEUED in Redis and its publish, nor leave the rest unpublished.
        StandardOutput.keepGoingWhenClosed(
            notice: "standard output is closed: task ids are no longer printed; every task is still published")
        do {
            let settings = try global.settings(flags: ["YADTQ_TOPIC": topic])
            let logger = global.logger(label: "yadtq-run")
            // The plugin folder, when it is here, gives each task type its default attempts.
            let plugins =
                FileManager.default.fileExists(atPath: settings.pluginsDirectory)
                ? PluginRegistry(directory: settings.pluginsDirectory) : nil
            // The fleet's heartbeats and plugin lists, read with a short wait: they only advise.
            let fleet = TaskStore(settings: settings, logger: logger, reconnectFor: .seconds(2))
            let heartbeats = try? fleet.workerHeartbeats()
            let choice = chooseTopic(settings: settings, workers: heartbeats ?? [])
            if let notice = choice.notice { logger.notice("\(notice)") }
            if let warning = choice.warning { logger.warning("\(warning)") }
            let typeWarnings = TypeWarnings(store: fleet, topic: choice.topic, group: settings.group, heartbeats: heartbeats)
            let publisher = try TaskPublisher(
                settings: settings, topic: choice.topic, partitions: partitions, clientID: "yadtq-run",
                logger: logger, plugins: plugins)
            let submission = TaskSubmission(
                publisher: publisher,
                stream: TaskLineStream(inputs: inputs, maximumLineBytes: publisher.messageLimit.maximumBytes),
                defaultStart: try start(), keepsIDs: wait)
            let report = try submission.run(
                onBatch: { tasks in
                    for warning in typeWarnings.warnings(for: tasks.map(\.message.type)) { logger.warning("\(warning)") }
                    // One write per batch, so a line streamed in (`tail -f`) shows its id at once.
                    var output = OutputBuffer()
                    for task in tasks { output.write(json ? Self.json(task) : Self.text(task)) }
                    output.flush()
                },
                onProblem: { problem in FileHandle.standardError.write(Data("\(TerminalText.escaped(problem))\n".utf8)) })
            var failed = report.badLines > 0 || report.publishFailures > 0 || report.endsWithheld > 0
            let waitFor = report.tasksToWaitFor
            if wait && !waitFor.isEmpty {
                let progress = try TaskWaiter(store: publisher.store).wait(for: waitFor) { progress in
                    ProgressBar.draw(progress)
                }
                ProgressBar.finish(progress)
                // A task whose outcome is no longer known fails the run too: its success cannot be confirmed.
                failed = failed || !progress.allSucceeded
                if results { try ResultTable.print(ids: waitFor, store: publisher.store) }
            }
            if failed { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            exitWithError(error)
        }
    }

    private static func text(_ task: PublishedTask) -> String {
        switch task.outcome {
        case .published: task.message.id
        case .scheduled(let dueAt): "\(task.message.id) (SCHEDULED for \(timestampText(epochMilliseconds: dueAt)))"
        case .duplicate: "\(task.message.id) (already exists, not published again)"
        case .failed(let reason): "\(task.message.id) FAILED: \(TerminalText.escaped(reason))"
        }
    }

    private static func json(_ task: PublishedTask) -> String {
        var fields = task.message.json.objectValue ?? [:]
        switch task.outcome {
        case .published(let partition):
            fields["status"] = .string("QUEUED")
            fields["partition"] = .int(Int64(partition))
        case .scheduled(let dueAt):
            fields["status"] = .string("SCHEDULED")
            fields["due_at"] = .int(dueAt)
        case .duplicate: fields["status"] = .string("DUPLICATE")
        case .failed(let reason):
            fields["status"] = .string("FAILED")
            fields["error"] = .string(reason)
        }
        return JSONValue.object(fields).jsonString
    }
}

/// The `--results` table: one line per task, in submission order.
enum ResultTable {
    static func print(ids: [String], store: TaskStore) throws {
        var output = OutputBuffer()
        output.write(TaskTable.header)
        for start in stride(from: 0, to: ids.count, by: 1000) {
            let chunk = Array(ids[start..<min(start + 1000, ids.count)])
            for (id, record) in zip(chunk, try store.records(ids: chunk)) {
                output.write(record.map(TaskTable.line) ?? TaskTable.pruned(id: id))
            }
        }
        output.flush()
    }
}

/// The `--wait` progress display on standard error: redrawn in place on a terminal,
/// one line every few seconds otherwise (logs and CI).
enum ProgressBar {
    // nonisolated(unsafe): drawn only from TaskWaiter.wait's progress callback, which runs on
    // the one thread that waits; nothing else reads or writes it.
    nonisolated(unsafe) private static var lastLine = ContinuousClock.now - .seconds(10)
    private static let isTerminal = isatty(STDERR_FILENO) == 1

    static func draw(_ progress: TaskWaiter.Progress) {
        let line = render(progress)
        if isTerminal {
            FileHandle.standardError.write(Data("\r\(line)\u{1B}[K".utf8))
        } else if ContinuousClock.now - lastLine >= .seconds(2) {
            lastLine = ContinuousClock.now
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        }
    }

    static func render(_ progress: TaskWaiter.Progress) -> String {
        let width = 30
        let fraction = progress.total == 0 ? 1 : Double(progress.done) / Double(progress.total)
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let pruned = progress.pruned > 0 ? "\(progress.pruned) pruned, " : ""
        return "[\(bar)] \(progress.done)/\(progress.total) done, \(progress.failed) failed, \(pruned)"
            + String(format: "%.0f tasks/s", progress.rate)
    }

    static func finish(_ progress: TaskWaiter.Progress) {
        if isTerminal { FileHandle.standardError.write(Data("\r\(render(progress))\u{1B}[K\n".utf8)) }
        FileHandle.standardError.write(Data("\(progress.summary)\n".utf8))
    }
}

extension RunCommand {
    /// The topic to publish to: `--topic`, `YADTQ_TOPIC`, or the one the running workers consume.
    fileprivate func chooseTopic(settings: YADTQSettings, workers: [TaskStore.WorkerHeartbeat]) -> TopicChoice {
        let explicit = topic ?? ProcessInfo.processInfo.environment["YADTQ_TOPIC"]
        return TopicChoice(
            explicit: explicit, fallback: settings.topic, group: settings.group, workers: workers,
            now: currentEpochMilliseconds())
    }
}
