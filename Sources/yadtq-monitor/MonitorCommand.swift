import ArgumentParser
import Foundation
import YADTQCommandLine
import YADTQCore

@main
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-monitor",
        abstract: "Watch the workers' heartbeats and the queue; judge each worker ALIVE, DEAD or STUCK.",
        discussion: """
            Refreshes every --interval: a live table when standard output is a terminal, \
            plain snapshots otherwise. Verdicts are stored in <namespace>:worker_status and \
            their changes logged with a timestamp. Exits once the topic's end marker has been \
            drained on every partition and every worker has stopped or is DEAD.
            """)

    @Option(help: "Time between refreshes, e.g. 5s or 500ms.")
    var interval = FleetMonitor.defaultInterval

    @Option(
        help: """
            A worker whose last heartbeat is older than this is DEAD; one that beats less often \
            is DEAD after twice its own heartbeat interval.
            """)
    var deadAfter = LivenessRules().deadAfter

    @Option(
        help: """
            A worker whose current task has run longer than this is STUCK. Default: the \
            worker's own time limit (from its heartbeat) plus one heartbeat interval.
            """)
    var stuckAfter: Duration?

    @Option(help: "A worker silent (or stopped) for longer than this is dropped from the listing and from Redis.")
    var forgetAfter = LivenessRules().forgetAfter

    @Option(help: "The topic whose end marker ends the monitor and whose lag it shows (env YADTQ_TOPIC).")
    var topic: String?

    @Flag(help: "Print one snapshot and exit.")
    var once = false

    @Flag(help: "Print each snapshot as one line of JSON.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let problem = RefreshInterval.problem(with: interval) { throw ValidationError("--interval: \(problem)") }
        guard deadAfter > .zero else { throw ValidationError("--dead-after must be more than 0, e.g. 10s") }
        guard forgetAfter > deadAfter else { throw ValidationError("--forget-after must be longer than --dead-after") }
        try validateTopic(topic, "--topic")
    }

    func run() throws {
        do {
            let settings = try global.settings(flags: ["YADTQ_TOPIC": topic])
            let monitor = FleetMonitor(
                settings: settings, topic: chooseTopic(settings: settings),
                rules: LivenessRules(deadAfter: deadAfter, stuckAfter: stuckAfter, forgetAfter: forgetAfter), rateWindow: interval,
                logger: global.logger(label: "yadtq-monitor"))
            if once {
                var noScreen: LiveScreen? = nil
                var verdicts = VerdictLog()
                show(try monitor.refresh(), screen: &noScreen, verdicts: &verdicts)
            } else {
                watch(monitor)
            }
        } catch {
            exitWithError(error)
        }
    }

    /// Refreshes until the run is over. A refresh that fails (Redis away) is reported
    /// and retried at the next interval rather than ending the monitor.
    private func watch(_ monitor: FleetMonitor) {
        var screen = isatty(STDOUT_FILENO) == 1 && !json ? LiveScreen() : nil
        var verdicts = VerdictLog()
        var completion = RunCompletion()
        let clock = ContinuousClock()
        while true {
            let started = clock.now
            do {
                let snapshot = try monitor.refresh()
                show(snapshot, screen: &screen, verdicts: &verdicts)
                if completion.isFinished(after: snapshot) {
                    Self.log("the end marker has been drained on every partition and every worker is gone; exiting")
                    return
                }
            } catch {
                Self.log("refresh failed: \(error); retrying in \(interval)")
            }
            let remaining = started + interval - clock.now
            if remaining > .zero { Thread.sleep(forTimeInterval: remaining.inSeconds) }
        }
    }

    /// Draws the live screen, or prints a snapshot; logs verdict changes to standard
    /// error (each once: see ``VerdictLog``) unless they would scribble over the live screen.
    private func show(_ snapshot: FleetSnapshot, screen: inout LiveScreen?, verdicts: inout VerdictLog) {
        let changes = verdicts.toLog(snapshot.changes)
        if screen == nil || isatty(STDERR_FILENO) == 0 {
            for change in changes { Self.log(TerminalText.escaped(change.description)) }
        }
        if screen != nil {
            screen?.draw(snapshot)
            return
        }
        let text = json ? snapshot.json.jsonString + "\n" : FleetTable.render(snapshot) + (once ? "" : "\n")
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    private static func log(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// `--topic`, `YADTQ_TOPIC`, or the topic the running workers consume.
    private func chooseTopic(settings: YADTQSettings) -> String {
        if let topic = topic ?? ProcessInfo.processInfo.environment["YADTQ_TOPIC"] { return topic }
        let store = TaskStore(settings: settings, logger: global.logger(label: "yadtq-monitor"), reconnectFor: .seconds(2))
        let workers = (try? store.workerHeartbeats()) ?? []
        return TopicChoice(
            explicit: nil, fallback: settings.topic, group: settings.group, workers: workers,
            now: currentEpochMilliseconds()
        ).topic
    }
}
