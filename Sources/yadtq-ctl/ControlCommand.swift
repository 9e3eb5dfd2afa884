import ArgumentParser
import Foundation
import YADTQCommandLine
import YADTQCore

@main
struct ControlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-ctl",
        abstract: "Look tasks up and count them: the operator's command.",
        discussion: """
            Every subcommand reads Redis only. With --json each task is one JSON object per \
            line with the fields id, status, type, args, result, error, errors, attempts, \
            max_attempts, worker, queued_at, started_at, finished_at (times in milliseconds \
            since the epoch).
            """,
        subcommands: [Status.self, List.self, Stats.self])
}

extension TaskStatus: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(rawValue: argument.uppercased())
    }
}

/// Opens the task store for one command: a dead Redis fails the command within seconds
/// instead of retrying for a minute.
private func openStore(_ global: GlobalOptions) throws -> TaskStore {
    let store = TaskStore(
        settings: try global.settings(), logger: global.logger(label: "yadtq-ctl"), reconnectFor: .seconds(5))
    try store.ping()
    return store
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

        @Argument(help: "Task ids.")
        var ids: [String]

        @Flag(help: "One JSON object per task and line.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard !ids.isEmpty else { throw ValidationError("name at least one task id") }
        }

        func run() throws {
            do {
                let store = try openStore(global)
                var output = OutputBuffer()
                var unknown: [String] = []
                var first = true
                for start in stride(from: 0, to: ids.count, by: 1000) {
                    let chunk = Array(ids[start..<min(start + 1000, ids.count)])
                    let records = try store.records(ids: chunk)
                    for (id, record) in zip(chunk, records) where record == nil { unknown.append(id) }
                    write(records.compactMap { $0 }, json: json, header: first, to: &output)
                    first = false
                }
                output.flush()
                for id in unknown {
                    FileHandle.standardError.write(
                        Data("yadtq-ctl: no task with id '\(id)' (never queued, or expired after its retention)\n".utf8))
                }
                if !unknown.isEmpty { throw ExitCode(1) }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                exitWithError(error)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List tasks, newest first.")

        @Option(help: "Only tasks in this status: QUEUED, PROCESSING, SUCCESS or FAILED.")
        var status: TaskStatus?

        @Option(help: "Only tasks of this type.")
        var type: String?

        @Option(help: "At most this many tasks.")
        var limit = 50

        @Flag(help: "One JSON object per task and line.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            do {
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
            } catch {
                exitWithError(error)
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count tasks per status and type, and the rate of the last minute.")

        @Flag(help: "One JSON object.")
        var json = false

        @OptionGroup var global: GlobalOptions

        func run() throws {
            do {
                let store = try openStore(global)
                let counts = try store.counts()
                let types = Set(try store.publishedPlugins().values.flatMap { $0.map(\.type) }).sorted()
                let typeCounts = try store.typeCounts(types)
                let now = currentEpochMilliseconds()
                let minute = try store.throughput(buckets: 1, bucketSeconds: 60, now: now - 1000)
                let finished = minute.reduce(0) { $0 + $1.succeeded + $1.failed }
                let rate = Double(finished) / 60
                if json {
                    let value = JSONValue.object([
                        "statuses": .object(Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, .int(Int64($0.value))) })),
                        "types": .object(typeCounts.mapValues { .int(Int64($0)) }),
                        "finished_per_second": .double(rate),
                    ])
                    print(value.jsonString)
                    return
                }
                let labels = TaskStatus.allCases.map(\.rawValue) + types.map { "type " + TerminalText.escaped($0) }
                let width = (labels.map(\.count).max() ?? 0) + 2
                func line(_ label: String, _ value: String) {
                    print(label + String(repeating: " ", count: width - label.count) + value)
                }
                for status in TaskStatus.allCases { line(status.rawValue, String(counts[status] ?? 0)) }
                for type in types { line("type " + TerminalText.escaped(type), String(typeCounts[type] ?? 0)) }
                line("rate", String(format: "%.1f tasks/s finished (last minute)", rate))
            } catch {
                exitWithError(error)
            }
        }
    }
}
