import ArgumentParser
import Foundation
import YADTQCommandLine
import YADTQCore

/// Measures the whole pipeline against running workers: publishes `add` tasks with known
/// results through the producer code `yadtq-run` uses, waits until every one is terminal
/// in Redis, checks every result, then reports throughput, latency and cost per task.
///
/// It neither starts nor stops anything: `scripts/bench` starts the private broker,
/// Redis and workers and hands their pids over for the CPU and memory figures.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-bench",
        abstract: "Benchmark running workers end to end (scripts/bench sets everything up).",
        discussion: """
            Without --rate, publishes --tasks tasks as fast as `yadtq-run FILE` does. With --rate, \
            offers that many tasks per second for --duration (or until --tasks are sent) and \
            reports the latency under that load. Every task's result is checked; any wrong \
            result makes the exit status 1. The last line is `throughput: <n> tasks/s`.
            """)

    @Option(help: "Tasks to publish (default \(Workload.defaultCount), or rate x duration with --rate).")
    var tasks: Int?

    @Option(help: "Offer this many tasks per second instead of publishing as fast as possible.")
    var rate: Double?

    @Option(help: "With --rate: how long to offer tasks, e.g. 10s.")
    var duration: Duration = .seconds(10)

    @Option(help: "Partitions for the topic when the benchmark has to create it.")
    var partitions = TaskPublisher.defaultPartitions

    @Option(help: "Topic to publish to (env YADTQ_TOPIC).")
    var topic: String?

    @Option(name: .customLong("worker-pid"), help: "A running worker's pid, for its CPU time and peak RSS (repeatable).")
    var workerPIDs: [Int32] = []

    @Option(help: "Workers that must hold the topic's partitions before the clock starts (default: one per --worker-pid).")
    var workers: Int?

    @Option(
        name: .customLong("process"),
        help: "Another process to account CPU time for, as name=pid, e.g. redis=1234 (repeatable).")
    var processes: [String] = []

    @Option(help: "How long to wait for every task to be terminal, e.g. 10m.")
    var timeout: Duration = .seconds(600)

    @Flag(help: "Replay the tasks' three state changes straight against Redis (no broker, no workers) and report each one's time inside Redis.")
    var replay = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let tasks, tasks < 1 { throw ValidationError("--tasks must be at least 1") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be above 0") }
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
        try validateTopic(topic, "--topic")
        _ = try extraGroups()
    }

    /// `--process name=pid` values as watched groups; pids given under one name (the masters
    /// of a Redis Cluster) are one group.
    private func extraGroups() throws -> [WatchedGroup] {
        var groups: [WatchedGroup] = []
        for entry in processes {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let pid = Int32(parts[1]) else {
                throw ValidationError("--process takes name=pid, got '\(entry)'")
            }
            if let index = groups.firstIndex(where: { $0.name == parts[0] }) {
                groups[index].pids.append(pid)
            } else {
                groups.append(WatchedGroup(name: String(parts[0]), pids: [pid]))
            }
        }
        return groups
    }

    func run() throws {
        do {
            try benchmark()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            exitWithError(error)
        }
    }

    private func benchmark() throws {
        let settings = try global.settings(flags: ["YADTQ_TOPIC": topic])
        let logger = global.logger(label: "yadtq-bench")
        let workload = Workload(
            count: tasks ?? rate.map { Int(($0 * duration.inSeconds).rounded()) } ?? Workload.defaultCount)
        if replay {
            try replayStateChanges(workload, store: TaskStore(settings: settings, logger: logger))
            return
        }
        let publisher = try TaskPublisher(
            settings: settings, topic: topic ?? settings.topic, partitions: partitions, clientID: "yadtq-bench",
            logger: logger)
        let topicPartitions = try publisher.partitions
        let store = publisher.store
        let watched = [WatchedGroup(name: "workers", pids: workerPIDs)] + (try extraGroups())
            + [WatchedGroup(name: "producer (yadtq-bench)", pids: [getpid()])]

        var out = BenchOutput()
        out.line("machine: \(ProcFS.machine())")
        out.line(
            "config: \(workload.count) add tasks, "
                + (rate.map { "offered at \(Int($0)) tasks/s" } ?? "published as fast as possible")
                + ", topic \(publisher.topic) with \(topicPartitions) partitions, \(workerPIDs.count) workers")
        for pid in workerPIDs { out.line("worker \(pid): \(ProcFS.commandLine(pid))") }
        out.flush()

        try Waiting.forAssignment(
            workers: workers ?? max(workerPIDs.count, 1), partitions: topicPartitions, store: store,
            stableFor: .milliseconds(1500), timeout: .seconds(90))
        let terminalBefore = try Waiting.terminalCount(store)
        let baseline = try ResourceUsage.baseline(watched)
        let clock = ContinuousClock()
        let start = clock.now
        let published: PublishRun
        if let rate {
            published = try Publishing.atFixedRate(workload, perSecond: rate, publisher: publisher)
        } else {
            published = try Publishing.asFastAsPossible(workload, publisher: publisher)
        }
        guard published.problems.isEmpty, published.ids.count == workload.count else {
            published.problems.prefix(10).forEach { FileHandle.standardError.write(Data("\($0)\n".utf8)) }
            throw BenchFailure(
                "\(published.problems.count) problems publishing; \(published.ids.count) of \(workload.count) tasks published")
        }
        try Waiting.forTerminal(total: workload.count, baseline: terminalBefore, store: store, timeout: timeout)
        let wall = clock.now - start
        let usage = try ResourceUsage(watched, since: baseline)

        // Successes kept shorter than the run expire before they are read; the finished
        // counters still say every task succeeded.
        let expiryExpected = settings.retention.succeeded < wall
        let verification = try Verification(
            ids: published.ids, workload: workload, store: store, expiryExpected: expiryExpected)
        if expiryExpected {
            let finished = try store.finishedCounts()
            guard finished[.failed] == 0, (finished[.success] ?? 0) >= workload.count else {
                throw BenchFailure("finished counters: \(finished[.success] ?? 0) succeeded, \(finished[.failed] ?? 0) failed")
            }
        }
        guard verification.wrong == 0 else {
            verification.examples.forEach { FileHandle.standardError.write(Data("wrong: \($0)\n".utf8)) }
            throw BenchFailure("\(verification.wrong) of \(workload.count) tasks did not end SUCCESS with the expected result")
        }

        let endToEnd = Double(verification.lastFinishedAt - published.startedAt) / 1000
        let throughput = Double(workload.count) / max(endToEnd, 0.001)
        out.line(
            "publish: \(workload.count) tasks in \(seconds(published.elapsed.inSeconds)) = \(Int(published.rate)) tasks/s"
                + (rate.map { " (offered \(Int($0)))" } ?? ""))
        out.line(
            "end to end: \(seconds(endToEnd)) from the first publish to the last finished_at "
                + "(\(seconds(wall.inSeconds)) until seen terminal)")
        let latency = Percentiles(verification.latencies)
        out.line(
            "latency queued->finished: p50 \(latency.at(0.5)) ms, p90 \(latency.at(0.9)) ms, "
                + "p99 \(latency.at(0.99)) ms, p99.9 \(latency.at(0.999)) ms, max \(latency.max) ms")
        for (name, values) in [("queued->started", verification.waits), ("started->finished", verification.runs)] {
            let part = Percentiles(values)
            out.line("  \(name): p50 \(part.at(0.5)) ms, p99 \(part.at(0.99)) ms, max \(part.max) ms")
        }
        out.line(
            "checked: \(workload.count) tasks SUCCESS with the expected result (\(verification.retried) needed a retry"
                + (verification.expired > 0
                    ? "; \(verification.expired) had expired before they were read, counted by the finished counters)" : ")"))
        out.line(usage.table(tasks: workload.count, wall: wall.inSeconds))
        out.line("throughput: \(Int(throughput.rounded())) tasks/s")
        out.flush()
    }

    private func replayStateChanges(_ workload: Workload, store: TaskStore) throws {
        let watched = try extraGroups() + [WatchedGroup(name: "yadtq-bench", pids: [getpid()])]
        var out = BenchOutput()
        out.line("machine: \(ProcFS.machine())")
        out.line("config: replay of \(workload.count) tasks' state changes against Redis (no broker, no workers)")
        out.flush()
        let baseline = try ResourceUsage.baseline(watched)
        let start = ContinuousClock.now
        let figures = try Replay(workload: workload, store: store).run()
        let wall = ContinuousClock.now - start
        out.line(try ResourceUsage(watched, since: baseline).table(tasks: workload.count, wall: wall.inSeconds))
        func perTask(_ time: Duration) -> String {
            String(format: "%.2f us/task", time.inSeconds * 1e6 / Double(workload.count))
        }
        out.line(
            "replay: inside Redis's scripts, queue \(perTask(figures.queue)), begin \(perTask(figures.begin)), "
                + "finish \(perTask(figures.finish)); total \(perTask(figures.queue + figures.begin + figures.finish))")
        out.flush()
    }

    private func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }
}

/// Collects the report and writes it to standard output in one go per section.
struct BenchOutput {
    private var text = ""

    mutating func line(_ line: String) {
        text += line
        text += "\n"
    }

    mutating func flush() {
        FileHandle.standardOutput.write(Data(text.utf8))
        text = ""
    }
}

extension ResourceUsage {
    /// One line per group: CPU seconds, CPU per task, cores busy on average, peak RSS.
    func table(tasks: Int, wall: Double) -> String {
        func row(_ name: String, _ cpuSeconds: Double) -> String {
            let label = name.count >= 26 ? name + " " : name + String(repeating: " ", count: 26 - name.count)
            return "  " + label + String(
                format: "%7.2f s  %7.1f us/task  %4.2f cores", cpuSeconds, cpuSeconds * 1e6 / Double(tasks),
                cpuSeconds / max(wall, 1e-9))
        }
        let rows = groups.map { group in
            row(group.processes > 1 ? "\(group.name) (\(group.processes))" : group.name, group.cpuSeconds)
                + String(format: "  peak RSS %.1f MiB", Double(group.peakResidentBytes) / 1_048_576)
        }
        let total = row("total", groups.reduce(0) { $0 + $1.cpuSeconds })
        let header = String(format: "cpu (user+sys) while the tasks ran, %.2f s wall; peak RSS is the largest process's:", wall)
        return ([header] + rows + [total]).joined(separator: "\n")
    }
}
