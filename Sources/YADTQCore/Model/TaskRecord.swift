/// One attempt's failure, as kept in a task's `errors` list.
public struct AttemptError: Sendable, Equatable, Codable {
    public var attempt: Int
    public var worker: String
    public var error: String
    /// Milliseconds since the epoch.
    public var at: Int64
}

/// Everything Redis holds about one task (its packed record, see ``TaskRecordCoding``).
public struct TaskRecord: Sendable, Equatable {
    public var id: String
    public var status: TaskStatus
    public var type: String
    public var args: JSONValue
    public var attempts: Int
    public var maxAttempts: Int
    public var result: JSONValue?
    public var error: String?
    public var errors: [AttemptError]
    public var logs: [String]
    public var progress: Double?
    public var worker: String?
    /// The Kafka partition the task was last consumed from.
    public var partition: Int32?
    public var queuedAt: Int64?
    public var startedAt: Int64?
    public var finishedAt: Int64?
    /// When a SCHEDULED task is (or was) due; `nil` for a task queued to start at once.
    public var dueAt: Int64?
    /// The topic its producer published it to; `nil` when its record has none. Not part of
    /// the outside view: a retry publishes the task there again.
    public var topic: String?

    /// The task's message, to publish it again: its queued time, else `queuedAt`.
    public func message(orQueuedAt queuedAt: Int64) -> TaskMessage {
        TaskMessage(id: id, type: type, args: args.arrayValue ?? [], maxAttempts: maxAttempts, queuedAt: self.queuedAt ?? queuedAt)
    }

    init(
        id: String, status: TaskStatus, type: String, args: JSONValue, attempts: Int, maxAttempts: Int,
        result: JSONValue?, error: String?, errors: [AttemptError], logs: [String], progress: Double?,
        worker: String?, partition: Int32?, queuedAt: Int64?, startedAt: Int64?, finishedAt: Int64?,
        dueAt: Int64?, topic: String? = nil
    ) {
        self.id = id
        self.status = status
        self.type = type
        self.args = args
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.result = result
        self.error = error
        self.errors = errors
        self.logs = logs
        self.progress = progress
        self.worker = worker
        self.partition = partition
        self.queuedAt = queuedAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.dueAt = dueAt
        self.topic = topic
    }

    /// The `errors` list as the task scripts write it (JSON: attempt, worker, error, at).
    static func decodeErrors(_ text: String?) -> [AttemptError] {
        guard let text, case .array(let entries)? = try? JSONValue(parsing: text) else { return [] }
        return entries.compactMap { entry in
            guard case .object(let fields) = entry else { return nil }
            return AttemptError(
                attempt: Int(fields["attempt"]?.intValue ?? 0), worker: fields["worker"]?.stringValue ?? "",
                error: fields["error"]?.stringValue ?? "", at: fields["at"]?.intValue ?? 0)
        }
    }
}

extension TaskRecord {
    /// The outside view of a task, as `yadtq-ctl status --json` and `GET /api/tasks/{id}` give
    /// it: the fields DESIGN.md fixes (and `due_at` for a task started later), whatever the Redis layout behind them. Arguments and
    /// results are JSON values, times milliseconds since the epoch, absent values `null`.
    public var outsideView: JSONValue {
        func number(_ value: Int64?) -> JSONValue { value.map(JSONValue.int) ?? .null }
        var view: [String: JSONValue] = [
            "id": .string(id),
            "status": .string(status.rawValue),
            "type": .string(type),
            "args": args,
            "result": result ?? .null,
            "error": error.map(JSONValue.string) ?? .null,
            "errors": .array(
                errors.map { entry in
                    .object([
                        "attempt": .int(Int64(entry.attempt)), "worker": .string(entry.worker),
                        "error": .string(entry.error), "at": .int(entry.at),
                    ])
                }),
            "attempts": .int(Int64(attempts)),
            "max_attempts": .int(Int64(maxAttempts)),
            "worker": worker.map(JSONValue.string) ?? .null,
            "queued_at": number(queuedAt),
            "started_at": number(startedAt),
            "finished_at": number(finishedAt),
        ]
        // Only a task with a delay or an `at` has one, so the view of every other task stays
        // exactly the fields DESIGN.md fixes.
        if let dueAt { view["due_at"] = .int(dueAt) }
        return .object(view)
    }
}

extension TaskRecord {
    /// Reads a task back from its outside view (a line of `yadtq-ctl status --json`, or
    /// `GET /api/tasks/{id}`); `nil` when it lacks an id or a known status.
    public init?(outsideView view: JSONValue) {
        guard let id = view["id"]?.stringValue,
            let status = view["status"]?.stringValue.flatMap(TaskStatus.init(rawValue:))
        else { return nil }
        self.id = id
        self.status = status
        type = view["type"]?.stringValue ?? ""
        args = view["args"] ?? .array([])
        attempts = Int(view["attempts"]?.intValue ?? 0)
        maxAttempts = Int(view["max_attempts"]?.intValue ?? Int64(TaskMessage.defaultMaxAttempts))
        // A success's result may be JSON null itself; other statuses have none.
        result = status == .success ? view["result"] : view["result"].flatMap { $0 == .null ? nil : $0 }
        error = view["error"]?.stringValue
        errors = (view["errors"]?.arrayValue ?? []).map { entry in
            AttemptError(
                attempt: Int(entry["attempt"]?.intValue ?? 0), worker: entry["worker"]?.stringValue ?? "",
                error: entry["error"]?.stringValue ?? "", at: entry["at"]?.intValue ?? 0)
        }
        logs = view["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        progress = view["progress"]?.doubleValue
        worker = view["worker"]?.stringValue
        partition = view["partition"]?.intValue.map { Int32($0) }
        queuedAt = view["queued_at"]?.intValue
        startedAt = view["started_at"]?.intValue
        finishedAt = view["finished_at"]?.intValue
        dueAt = view["due_at"]?.intValue
    }
}
