import ArgumentParser
import Foundation
import YADTQCommandLine
import YADTQCore

@main
struct ControlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-ctl",
        abstract: "Look tasks up, count, cancel, retry and purge them: the operator's command.",
        discussion: """
            status, ls and stats read Redis only; retry also publishes to Kafka. With --json, status and ls give each \
            task as one JSON object per line with the fields id, status, type, args, result, error, errors, attempts, \
            max_attempts, worker, queued_at, started_at, finished_at (times in milliseconds \
            since the epoch); cancel, retry and purge give what they did to each task as one JSON object per line \
            with the fields id, status, changed, change (and from) or error, result.
            """,
        subcommands: [Status.self, List.self, Stats.self, Cancel.self, Retry.self, Purge.self])

    /// The subcommands that take task ids as arguments.
    private static let takingTaskIDs: [any ParsableCommand.Type] = [Status.self, Cancel.self, Retry.self]

    /// ArgumentParser's `main()`, but a command line refused where task ids go is explained
    /// when it holds an argument that may be meant as a task id that starts with '-'
    /// (``DashedTaskID``): the parser would say the option is unknown, or that no id is named.
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        var command: any ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            if let subcommand = arguments.first, takingTaskIDs.contains(where: { $0._commandName == subcommand }),
                let names = optionNames(of: subcommand),
                let explained = DashedTaskID.message(
                    command: "yadtq-ctl \(subcommand)", arguments: Array(arguments.dropFirst()), options: names.all,
                    takingValue: names.takingValue)
            {
                FileHandle.standardError.write(
                    Data("Error: \(explained)\n  See 'yadtq-ctl \(subcommand) --help' for more information.\n".utf8))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
            exit(withError: error)
        }
        do {
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// The option names of `subcommand` with their dashes (`--json`, `-h`), and those that take
    /// a value, read from ArgumentParser's own description of the command (the JSON of
    /// `--experimental-dump-help`), so that no list of them is kept here.
    private static func optionNames(of subcommand: String) -> (all: Set<String>, takingValue: Set<String>)? {
        struct Tool: Decodable {
            struct Command: Decodable {
                var commandName: String
                var subcommands: [Command]?
                var arguments: [Argument]?
            }
            struct Argument: Decodable {
                var kind: String
                var names: [Name]?
            }
            struct Name: Decodable {
                var kind: String
                var name: String
                var spelled: String { (kind == "long" ? "--" : "-") + name }
            }
            var command: Command
        }
        guard let tool = try? JSONDecoder().decode(Tool.self, from: Data(_dumpHelp().utf8)),
            let command = tool.command.subcommands?.first(where: { $0.commandName == subcommand })
        else { return nil }
        var all: Set<String> = []
        var takingValue: Set<String> = []
        for argument in command.arguments ?? [] where argument.kind != "positional" {
            let names = (argument.names ?? []).map(\.spelled)
            all.formUnion(names)
            if argument.kind == "option" { takingValue.formUnion(names) }
        }
        return (all, takingValue)
    }
}

extension TaskStatus: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(rawValue: argument.uppercased())
    }
}

/// How long a command keeps retrying an unreachable Redis: a dead Redis fails the command
/// within seconds instead of after a minute.
private let reconnectLimit: Duration = .seconds(5)

/// Opens the task store for one command (see ``reconnectLimit``).
private func openStore(_ global: GlobalOptions) throws -> TaskStore {
    let store = TaskStore(
        settings: try global.settings(), logger: global.logger(label: "yadtq-ctl"), reconnectFor: reconnectLimit)
    try store.ping()
    return store
}

/// Runs a command's body: an `ExitCode` passes through, any other error is reported and
/// ends the command.
private func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        exitWithError(error)
    }
}

/// One or more task ids, as the commands that act on named tasks take them.
struct TaskIDs: ParsableArguments {
    @Argument(help: "Task ids.")
    var ids: [String]

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("name at least one task id") }
    }
}

/// Refuses a `--type` that cannot name a task type (the one rule, ``TaskDeclaration/typeFilterProblem(_:)``),
/// rather than list or purge nothing.
private func checkTypeOption(_ type: String?) throws {
    if let type, let problem = TaskDeclaration.typeFilterProblem(type) {
        throw ValidationError("--type: " + problem)
    }
}

private func unknownTask(_ id: String) -> String {
    "no task with id '\(id)' (never queued, or expired after its retention)"
}

private func complain(_ text: String) {
    FileHandle.standardError.write(Data("yadtq-ctl: \(text)\n".utf8))
}

/// What an operator's change did to one task, and the words the text output says it with.
private struct ChangeReport {
    /// The task's entry as ``TaskStore/OperatorChange/json(id:)`` gives it.
    var entry: JSONValue
    var status: TaskStatus?
    var changed: Bool
    /// After `<id>: ` on the line, but for an unknown id, whose line it is whole.
    var words: String

    init(id: String, shown: String, change: TaskStore.OperatorChange, allowed: String) {
        entry = change.json(id: id)
        status = change.status
        changed = change.changed
        switch change {
        case .cancelled(let from): words = "\(from.rawValue) -> CANCELLED"
        case .cancelRequested:
            words = "PROCESSING, cancel requested (its attempt is stopped within a second and ends CANCELLED)"
        case .requeued: words = "-> QUEUED, published again"
        case .publishFailed(let reason): words = "queued again, but \(reason); it is FAILED again"
        case .missing: words = unknownTask(shown)
        case .unchanged(let status): words = "\(status.rawValue), unchanged (\(allowed))"
        }
    }

    /// A task deleted by `purge`.
    init(deleted id: String, status: TaskStatus) {
        entry = TaskStore.OperatorChange.deletedJSON(id: id, status: status)
        self.status = status
        changed = true
        words = "deleted"
    }

    /// The `--json` line: the entry, and `result`, the text output's words.
    var json: String {
        var fields = entry.objectValue ?? [:]
        fields["result"] = .string(words)
        return JSONValue.object(fields).jsonString
    }
}

/// Prints, per id, what an operator's change did: a change on standard output, a refusal on
/// standard error; with `json`, one JSON object per task on standard output and nothing else.
/// Returns whether every id was changed.
private func report(_ ids: [String], _ changes: [TaskStore.OperatorChange], allowed: String, json: Bool) -> Bool {
    var allChanged = true
    var output = OutputBuffer()
    for (id, change) in zip(ids, changes) {
        let shown = json ? id : TerminalText.escaped(id)
        let report = ChangeReport(id: id, shown: shown, change: change, allowed: allowed)
        allChanged = allChanged && report.changed
        if json {
            output.write(report.json)
        } else if report.changed {
            output.write("\(shown): \(report.words)")
        } else {
            output.flush()
            complain(report.status == nil ? report.words : "\(shown): \(report.words)")
        }
    }
    output.flush()
    return allChanged
}

private func write(_ records: [TaskRecord], json: Bool, header: Bool, to output: inout OutputBuffer) {
    if !json && header { output.write(TaskTable.header) }
    for record in records {
        output.write(json ? record.outsideView.jsonString : TaskTable.line(record))
    }
}

extension ControlCommand {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show tasks by id; exits 1 if any id is unknown.")

        @OptionGroup var tasks: TaskIDs

        @Flag(help: "One JSON object per task and line.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let store = try openStore(global)
                var output = OutputBuffer()
                var unknown: [String] = []
                var first = true
                for start in stride(from: 0, to: tasks.ids.count, by: 1000) {
                    let chunk = Array(tasks.ids[start..<min(start + 1000, tasks.ids.count)])
                    let records = try store.records(ids: chunk)
                    for (id, record) in zip(chunk, records) where record == nil { unknown.append(id) }
                    write(records.compactMap { $0 }, json: json, header: first, to: &output)
                    first = false
                }
                output.flush()
                for id in unknown { complain(unknownTask(TerminalText.escaped(id))) }
                if !unknown.isEmpty { throw ExitCode(1) }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List tasks, newest first.")

        @Option(help: "Only tasks in this status: SCHEDULED, QUEUED, PROCESSING, SUCCESS, FAILED or CANCELLED.")
        var status: TaskStatus?

        @Option(help: "Only tasks of this type.")
        var type: String?

        @Option(help: "At most this many tasks.")
        var limit = TaskStore.defaultListLimit

        @Flag(help: "One JSON object per task and line.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
            try checkTypeOption(type)
        }

        func run() throws {
            try reportingErrors {
                let store = try openStore(global)
                var output = OutputBuffer()
                var cursor: String? = nil
                var listed = 0
                repeat {
                    let page = try store.taskPage(
                        status: status, type: type, cursor: cursor, limit: min(1000, limit - listed))
                    write(page.records, json: json, header: cursor == nil, to: &output)
                    listed += page.records.count
                    cursor = page.nextCursor
                } while cursor != nil && listed < limit
                output.flush()
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count tasks per status and type, show the plugins' periodic schedules, and the rate of the last minute.")

        @Flag(help: "One JSON object.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let store = try openStore(global)
                let counts = try store.counts()
                let plugins = try store.publishedPlugins().values.flatMap { $0 }
                let types = Set(plugins.map(\.type)).sorted()
                // The periodic schedules the workers loaded, with each one's next tick.
                var schedules: [String: PluginSchedule] = [:]
                for plugin in plugins where plugin.isLoaded { schedules[plugin.type] = plugin.schedule ?? schedules[plugin.type] }
                let typeCounts = try store.typeCounts(types)
                let now = currentEpochMilliseconds()
                // The last 60 whole seconds: one bucket of 60 s would be the clock's minute so far.
                let minute = try store.throughput(buckets: 60, bucketSeconds: 1, now: now - 1000)
                let finished = minute.reduce(0) { $0 + $1.succeeded + $1.failed }
                let rate = Double(finished) / 60
                let memory = try store.memory()
                if json {
                    let value = JSONValue.object([
                        "statuses": .object(Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, .int(Int64($0.value))) })),
                        "types": .object(typeCounts.mapValues { .int(Int64($0)) }),
                        "schedules": .object(schedules.mapValues { schedule in
                            .object([
                                "schedule": .string(schedule.description),
                                "next": schedule.nextTick(after: now).map(JSONValue.int) ?? .null,
                            ])
                        }),
                        "finished_per_second": .double(rate),
                        "redis_memory": .array(memory.map(\.json)),
                    ])
                    print(value.jsonString)
                    return
                }
                let labels = TaskStatus.allCases.map(\.rawValue) + types.map { "type " + TerminalText.escaped($0) }
                    + schedules.keys.map { "schedule " + TerminalText.escaped($0) } + memory.map { "redis \($0.node)" }
                let width = (labels.map(\.count).max() ?? 0) + 2
                func line(_ label: String, _ value: String) {
                    print(label + String(repeating: " ", count: width - label.count) + value)
                }
                for status in TaskStatus.allCases { line(status.rawValue, String(counts[status] ?? 0)) }
                for type in types { line("type " + TerminalText.escaped(type), String(typeCounts[type] ?? 0)) }
                for (type, schedule) in schedules.sorted(by: { $0.key < $1.key }) {
                    let next = schedule.nextTick(after: now).map { timestampText(epochMilliseconds: $0) } ?? "never"
                    line("schedule " + TerminalText.escaped(type), "\(schedule.description), next \(next)")
                }
                line("rate", String(format: "%.1f tasks/s finished (last minute)", rate))
                for master in memory { line("redis \(master.node)", master.summary) }
                for warning in memory.compactMap(\.warning) { complain("warning: \(warning)") }
            }
        }
    }
}

extension ControlCommand {
    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel tasks: SCHEDULED and QUEUED ones never run; PROCESSING ones are stopped within a second.",
            discussion: """
                The worker running a PROCESSING task stops its attempt, and the task ends CANCELLED \
                instead of being retried or FAILED (unless the attempt succeeded first). Exits 1 if any \
                id is unknown or already terminal.
                """)

        @OptionGroup var tasks: TaskIDs

        @Flag(help: "One JSON object per task and line: id, status, changed, change (and from) or error, result.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let store = try openStore(global)
                let changes = try store.cancel(tasks.ids, at: currentEpochMilliseconds())
                if !report(
                    tasks.ids, changes, allowed: "only SCHEDULED, QUEUED or PROCESSING tasks can be cancelled", json: json)
                {
                    throw ExitCode(1)
                }
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue FAILED or CANCELLED tasks again under their ids and publish them again.",
            discussion: """
                The task starts over with attempts 0; its earlier errors stay in its record. \
                Exits 1 if any id is unknown or not FAILED/CANCELLED.
                """)

        @Argument(help: "Task ids.")
        var ids: [String] = []

        @Flag(help: "Retry every kept FAILED task (with --type and --since to narrow it).")
        var failed = false

        @Flag(help: "Retry every kept CANCELLED task (with --type and --since to narrow it).")
        var cancelled = false

        @Option(help: "With --failed or --cancelled: only tasks of this type.")
        var type: String?

        @Option(help: "With --failed or --cancelled: only tasks that finished within this long (e.g. 1h).")
        var since: Duration?

        @Option(help: "The topic for a task whose record names none (env YADTQ_TOPIC); the others go back to their own.")
        var topic: String?

        @Flag(help: "One JSON object per task and line: id, status, changed, change (and from) or error, result.")
        var json = false

        @OptionGroup var global: GlobalOptions

        /// The filter of --failed or --cancelled; `nil` when ids are named.
        private func filter() throws -> RetryFilter? {
            guard failed || cancelled else { return nil }
            do {
                return try RetryFilter(status: cancelled ? .cancelled : .failed, type: type, since: since)
            } catch {
                throw ValidationError(error.description)
            }
        }

        func validate() throws {
            guard !(failed && cancelled) else { throw ValidationError("--failed or --cancelled, not both") }
            guard (failed || cancelled) != !ids.isEmpty else {
                throw ValidationError("name task ids, or --failed or --cancelled (not both)")
            }
            if ids.isEmpty { _ = try filter() } else if type != nil || since != nil {
                throw ValidationError("--type and --since go with --failed or --cancelled")
            }
            try validateTopic(topic, "--topic")
        }

        func run() throws {
            try reportingErrors {
                let settings = try global.settings(flags: ["YADTQ_TOPIC": topic])
                let publisher = try TaskPublisher(
                    settings: settings, topic: topic ?? settings.topic, partitions: TaskPublisher.defaultPartitions,
                    createsTopicNow: false, clientID: "yadtq-ctl", logger: global.logger(label: "yadtq-ctl"),
                    reconnectFor: reconnectLimit)
                let retried: (ids: [String], changes: [TaskStore.OperatorChange])
                if let filter = try filter() {
                    let bulk = try publisher.retry(matching: filter)
                    guard !bulk.ids.isEmpty else {
                        if !json { print("no \(filter.status.rawValue) task to retry") }
                        return
                    }
                    retried = (bulk.ids, bulk.changes)
                } else {
                    retried = (ids, try publisher.retry(ids))
                }
                if !report(retried.ids, retried.changes, allowed: "only FAILED or CANCELLED tasks can be retried", json: json) {
                    throw ExitCode(1)
                }
            }
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete kept terminal tasks (SUCCESS, FAILED or CANCELLED) now, with their index entries and counts.",
            discussion: "Asks for confirmation unless --yes; without a terminal to ask on, --yes is needed.")

        @Option(help: "The terminal status to delete: SUCCESS, FAILED or CANCELLED.")
        var status: TaskStatus

        @Option(help: "Only tasks that finished at least this long ago (e.g. 7d).")
        var olderThan: Duration?

        @Option(help: "Only tasks of this type.")
        var type: String?

        @Flag(help: "Do not ask for confirmation.")
        var yes = false

        @Flag(help: "One JSON object per deleted task and line: id, status, changed, change, result; nothing else.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard status.isTerminal else {
                throw ValidationError("--status must be a terminal status: SUCCESS, FAILED or CANCELLED")
            }
            try checkTypeOption(type)
        }

        func run() throws {
            try reportingErrors {
                let store = try openStore(global)
                var what = "every kept \(status.rawValue) task"
                if let type { what += " of type \(TerminalText.escaped(type))" }
                if let olderThan { what += " finished more than \(olderThan.compactText) ago" }
                if !yes {
                    guard isatty(STDIN_FILENO) == 1 else {
                        complain("purge deletes \(what); pass --yes to confirm without a terminal")
                        throw ExitCode(1)
                    }
                    // With --json the question goes to standard error: standard output is the JSON lines'.
                    let ask = "Delete \(what) (\(try store.counts()[status] ?? 0) \(status.rawValue) in all)? [y/N] "
                    if json { FileHandle.standardError.write(Data(ask.utf8)) } else { print(ask, terminator: "") }
                    let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased()
                    guard answer == "y" || answer == "yes" else {
                        if !json { print("nothing deleted") }
                        return
                    }
                }
                let cutoff = olderThan.map { currentEpochMilliseconds() - $0.inMilliseconds }
                let deleted = try store.purge(status: status, type: type, finishedBy: cutoff)
                guard json else { return print("deleted \(deleted.count) \(status.rawValue) tasks") }
                var output = OutputBuffer()
                for id in deleted { output.write(ChangeReport(deleted: id, status: status).json) }
                output.flush()
            }
        }
    }
}
