import Foundation
import YADTQCore

/// How tasks, workers and times look in the JSON API and on the pages, in one place so
/// the two never disagree.
enum TaskPresentation {
    /// A task as the JSON API returns it: every field of its record, its durations and its page.
    static func json(_ record: TaskRecord) -> JSONValue {
        func number(_ value: Int64?) -> JSONValue { value.map(JSONValue.int) ?? .null }
        let durations = Durations(record)
        var view = record.outsideView.objectValue ?? [:]
        view["logs"] = .array(record.logs.map(JSONValue.string))
        view["progress"] = record.progress.map(JSONValue.double) ?? .null
        view["partition"] = number(record.partition.map(Int64.init))
        view["wait_ms"] = number(durations.waited)
        view["run_ms"] = number(durations.ran)
        view["total_ms"] = number(durations.total)
        view["url"] = .string(URLText.task(record.id))
        return .object(view)
    }

    /// How long a task waited, ran (its last attempt) and took in all, in milliseconds.
    struct Durations {
        var waited: Int64?
        var ran: Int64?
        var total: Int64?

        init(_ record: TaskRecord) {
            func span(_ from: Int64?, _ to: Int64?) -> Int64? {
                guard let from, let to, to >= from else { return nil }
                return to - from
            }
            waited = span(record.queuedAt, record.startedAt)
            ran = span(record.startedAt, record.finishedAt)
            total = span(record.queuedAt, record.finishedAt)
        }
    }

    /// `2024-05-01 12:00:03.123 UTC`.
    static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "—" }
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(milliseconds % 1000))
    }

    /// `850 ms`, `2.35 s`, `3 min 5 s`, `2 h 10 min`.
    static func duration(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "—" }
        switch milliseconds {
        case ..<1000: return "\(milliseconds) ms"
        case ..<60_000: return String(format: "%.2f s", Double(milliseconds) / 1000)
        case ..<3_600_000: return "\(milliseconds / 60_000) min \(milliseconds % 60_000 / 1000) s"
        default: return "\(milliseconds / 3_600_000) h \(milliseconds % 3_600_000 / 60_000) min"
        }
    }

    /// `3 s ago`, relative to `now`.
    static func age(_ milliseconds: Int64?, now: Int64) -> String {
        guard let milliseconds else { return "—" }
        return duration(max(0, now - milliseconds)) + " ago"
    }

    /// A value as one line of JSON, cut to `limit` characters for a table cell.
    static func excerpt(_ value: JSONValue, limit: Int = 60) -> String {
        let text = value.jsonString
        return text.count <= limit ? text : text.prefix(limit - 1) + "…"
    }

    /// Indented JSON for the task page; scalars and empty containers stay on one line.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let members) where !members.isEmpty:
            let lines = members.sorted { $0.key < $1.key }.map { key, member in
                inner + JSONValue.string(key).jsonString + ": " + pretty(member, indent: inner)
            }
            return "{\n" + lines.joined(separator: ",\n") + "\n\(indent)}"
        default:
            return value.jsonString
        }
    }

    /// A worker as the JSON API returns it: the heartbeat's fields, its verdict and where
    /// the verdict came from.
    static func json(_ worker: WorkerView) -> JSONValue {
        var fields = worker.document?.objectValue ?? [:]
        fields["name"] = .string(worker.name)
        fields["verdict"] = .string(worker.verdict.rawValue)
        fields["verdict_reason"] = .string(worker.reason)
        fields["verdict_by"] = .string(worker.judgedByMonitor ? "monitor" : "heartbeat")
        return .object(fields)
    }
}

/// A worker as the pages show it: its ``Heartbeat`` and a verdict, the monitor's when it
/// has judged the worker, else the monitor's own ``LivenessRules`` applied to the heartbeat
/// (same verdicts, STUCK included, same thresholds as `yadtq-monitor` with its defaults),
/// so the page is right without a monitor.
public struct WorkerView: Sendable {
    /// The rules the page applies when no monitor has judged a worker: `yadtq-monitor`'s defaults.
    public static let rules = LivenessRules()

    public var name: String
    /// The heartbeat document as the worker wrote it (the API returns its fields).
    public var document: JSONValue?
    /// The worker's heartbeat, `nil` when it wrote none that can be read.
    public var heartbeat: Heartbeat?
    public var verdict: WorkerVerdict
    /// Why, e.g. `no heartbeat for 12.0s (dead after 10s)`; empty for a plain ALIVE.
    public var reason: String
    /// Whether the verdict is the monitor's (else the page judged the heartbeat).
    public var judgedByMonitor: Bool
    /// The time on the worker's clock when the page was made, which its heartbeat's times
    /// compare with (see ``Heartbeat/clock(at:redisNow:)``).
    public var clock: Int64

    /// `workers` without those the monitor forgets (silent for over its default `--forget-after`,
    /// after which it also deletes their entries).
    static func listed(_ workers: [WorkerView]) -> [WorkerView] {
        // A plain loop: Swift 6.3's optimizer crashed on the same rule written as a filter closure.
        var kept: [WorkerView] = []
        for worker in workers {
            if let heartbeat = worker.heartbeat, rules.isForgotten(heartbeat, at: worker.clock) { continue }
            kept.append(worker)
        }
        return kept
    }

    public init(_ entry: TaskStore.WorkerHeartbeat, now: Int64) {
        self.init(
            name: entry.name, document: entry.document, storedVerdict: entry.verdict, now: now, redisNow: entry.redisNow)
    }

    /// - Parameters:
    ///   - document: the heartbeat JSON the worker wrote.
    ///   - storedVerdict: the monitor's verdict, when it has judged the worker.
    ///   - now: milliseconds since the epoch.
    ///   - redisNow: Redis's clock when it read the heartbeat, when known.
    public init(name: String, document: JSONValue?, storedVerdict: String?, now: Int64, redisNow: Int64? = nil) {
        self.name = name
        self.document = document
        let heartbeat = document.flatMap { try? Heartbeat(document: $0) }
        self.heartbeat = heartbeat
        let clock = heartbeat?.clock(at: now, redisNow: redisNow) ?? now
        self.clock = clock
        if let stored = storedVerdict.flatMap(WorkerVerdict.init(rawValue:)) {
            verdict = stored
            reason = ""
            judgedByMonitor = true
        } else if let heartbeat {
            let judgement = Self.rules.judge(heartbeat, at: clock)
            verdict = judgement.verdict
            reason = judgement.reason
            judgedByMonitor = false
        } else {
            verdict = .dead
            reason = "no readable heartbeat"
            judgedByMonitor = false
        }
    }

    var lastHeartbeat: Int64? { heartbeat?.lastHeartbeat }
    var state: String { heartbeat?.state.rawValue ?? "—" }
    var currentTask: String? { heartbeat?.currentTask }
    var taskStartedAt: Int64? { heartbeat?.taskStartedAt }
    var processed: Int { heartbeat?.processed ?? 0 }
    var failed: Int { heartbeat?.failed ?? 0 }
    var partitions: [Int32] { heartbeat?.partitions ?? [] }
    var host: String? { heartbeat?.host }
    var pid: Int32? { heartbeat?.pid }
    var startedAt: Int64? { heartbeat?.startedAt }
}
