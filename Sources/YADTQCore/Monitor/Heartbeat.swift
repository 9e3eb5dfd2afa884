/// What a worker says it is doing.
public enum WorkerState: String, Sendable, CaseIterable {
    case idle
    case busy
    /// Started, but not consuming yet: its topic does not exist. ``Heartbeat/note`` says which.
    case waiting
    /// The worker left gracefully and will not beat again.
    case stopped
}

/// One worker's entry in `<prefix>all_heartbeats`, written only by that worker.
///
/// The worker encodes it with ``json`` and the monitor decodes it with
/// ``init(parsing:)``, so the field names exist in this one place.
public struct Heartbeat: Sendable, Equatable {
    /// When the worker wrote this entry, in milliseconds since the epoch.
    public var lastHeartbeat: Int64
    public var state: WorkerState
    /// The longest-running task in hand, if any.
    public var currentTask: String?
    /// When ``currentTask`` started, in milliseconds since the epoch.
    public var taskStartedAt: Int64?
    /// Tasks that reached a terminal status on this worker.
    public var processed: Int
    /// Of ``processed``, those that ended FAILED.
    public var failed: Int
    public var partitions: [Int32]
    public var pid: Int32
    public var host: String
    /// When the worker process started, in milliseconds since the epoch.
    public var startedAt: Int64
    /// The worker's time limit per task; the worker kills a task at this limit.
    /// `nil` from a worker that does not report it.
    public var timeLimitMilliseconds: Int64?
    /// How often the worker beats. `nil` from a worker that does not report it.
    public var intervalMilliseconds: Int64?
    /// The topic the worker consumes (or waits for), and its consumer group.
    public var topic: String?
    public var group: String?
    /// What the worker wants an operator to know, e.g. `waiting for topic t to exist`.
    public var note: String?
    /// The port of the worker's `/metrics` endpoint, when it serves one.
    public var metricsPort: Int?
    /// When the worker began the batch it is running (its attempts' `started_at`), in
    /// milliseconds since the epoch; `nil` between batches (see ``AttemptElsewhere``).
    public var batchStartedAt: Int64?
    /// When Redis stored this entry, on Redis's clock (milliseconds since the epoch): Redis
    /// stamps it as it stores the entry, so readers judge a heartbeat's age on one clock
    /// whatever the workers' hosts' clocks say (see ``clock(at:redisNow:)``). `nil` in an
    /// entry a worker wrote before Redis stamped them.
    public var receivedAt: Int64?

    public init(
        lastHeartbeat: Int64, state: WorkerState, currentTask: String? = nil, taskStartedAt: Int64? = nil,
        processed: Int = 0, failed: Int = 0, partitions: [Int32] = [], pid: Int32, host: String, startedAt: Int64,
        timeLimitMilliseconds: Int64? = nil, intervalMilliseconds: Int64? = nil, topic: String? = nil,
        group: String? = nil, note: String? = nil, metricsPort: Int? = nil, batchStartedAt: Int64? = nil,
        receivedAt: Int64? = nil
    ) {
        self.lastHeartbeat = lastHeartbeat
        self.state = state
        self.currentTask = currentTask
        self.taskStartedAt = taskStartedAt
        self.processed = processed
        self.failed = failed
        self.partitions = partitions
        self.pid = pid
        self.host = host
        self.startedAt = startedAt
        self.timeLimitMilliseconds = timeLimitMilliseconds
        self.intervalMilliseconds = intervalMilliseconds
        self.topic = topic
        self.group = group
        self.note = note
        self.metricsPort = metricsPort
        self.batchStartedAt = batchStartedAt
        self.receivedAt = receivedAt
    }

    /// The time on this worker's clock that a reader whose own clock says `localNow` lives
    /// in, given Redis's clock when it read the entry (`redisNow`, `nil` when not read): the
    /// heartbeat's own time plus its age on Redis's clock. Every time in a heartbeat comes
    /// from its worker's host, so the rules compare them with this instead of `localNow`: a
    /// host whose clock is off by a minute would otherwise have its workers judged DEAD (or
    /// a dead one ALIVE), and their tasks taken over while they run. Without both Redis
    /// times (an entry of an older worker) it is `localNow`: the hosts' clocks are trusted.
    public func clock(at localNow: Int64, redisNow: Int64?) -> Int64 {
        guard let receivedAt, let redisNow else { return localNow }
        return lastHeartbeat + max(0, redisNow - receivedAt)
    }

    /// The document as stored in Redis (DESIGN.md names these fields).
    public var json: JSONValue {
        var fields: [String: JSONValue] = [
            "last_heartbeat": .int(lastHeartbeat),
            "state": .string(state.rawValue),
            "current_task": currentTask.map(JSONValue.string) ?? .null,
            "task_started_at": taskStartedAt.map(JSONValue.int) ?? .null,
            "processed": .int(Int64(processed)),
            "failed": .int(Int64(failed)),
            "partitions": .array(partitions.map { .int(Int64($0)) }),
            "pid": .int(Int64(pid)),
            "host": .string(host),
            "started_at": .int(startedAt),
        ]
        if let timeLimitMilliseconds { fields["time_limit_ms"] = .int(timeLimitMilliseconds) }
        if let intervalMilliseconds { fields["interval_ms"] = .int(intervalMilliseconds) }
        if let topic { fields["topic"] = .string(topic) }
        if let group { fields["group"] = .string(group) }
        if let note { fields["note"] = .string(note) }
        if let metricsPort { fields["metrics_port"] = .int(Int64(metricsPort)) }
        if let batchStartedAt { fields["batch_started_at"] = .int(batchStartedAt) }
        if let receivedAt { fields[Self.receivedAtField] = .int(receivedAt) }
        return .object(fields)
    }

    /// Decodes a stored heartbeat. Only `last_heartbeat` and `state` are required, so an
    /// entry from an older or newer worker still shows; a missing count reads as 0.
    public init(parsing text: String) throws(HeartbeatDecodingError) {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: text)
        } catch {
            throw HeartbeatDecodingError(reason: "not JSON: \(error)")
        }
        try self.init(document: document)
    }

    /// Decodes a stored heartbeat already read as JSON (see ``init(parsing:)``).
    public init(document: JSONValue) throws(HeartbeatDecodingError) {
        guard document.objectValue != nil else { throw HeartbeatDecodingError(reason: "not a JSON object") }
        guard let lastHeartbeat = document["last_heartbeat"]?.intValue else {
            throw HeartbeatDecodingError(reason: "no integer last_heartbeat")
        }
        guard let stateText = document["state"]?.stringValue, let state = WorkerState(rawValue: stateText) else {
            throw HeartbeatDecodingError(reason: "state is not one of idle, busy, waiting, stopped")
        }
        self.init(
            lastHeartbeat: lastHeartbeat, state: state, currentTask: document["current_task"]?.stringValue,
            taskStartedAt: document["task_started_at"]?.intValue,
            processed: Int(document["processed"]?.intValue ?? 0), failed: Int(document["failed"]?.intValue ?? 0),
            partitions: document["partitions"]?.arrayValue?.compactMap { $0.intValue.flatMap { Int32(exactly: $0) } } ?? [],
            pid: document["pid"]?.intValue.flatMap { Int32(exactly: $0) } ?? 0, host: document["host"]?.stringValue ?? "",
            startedAt: document["started_at"]?.intValue ?? 0,
            timeLimitMilliseconds: document["time_limit_ms"]?.intValue,
            intervalMilliseconds: document["interval_ms"]?.intValue, topic: document["topic"]?.stringValue,
            group: document["group"]?.stringValue, note: document["note"]?.stringValue,
            metricsPort: document["metrics_port"]?.intValue.flatMap { Int(exactly: $0) },
            batchStartedAt: document["batch_started_at"]?.intValue,
            receivedAt: document[Self.receivedAtField]?.intValue)
    }

    /// The field Redis adds to the stored entry (see ``receivedAt``).
    static let receivedAtField = "received_at"

}

/// Why a stored heartbeat could not be read; the monitor lists such entries as problems.
public struct HeartbeatDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String

    public var description: String { "unreadable heartbeat: \(reason)" }
}
