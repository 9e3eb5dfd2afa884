extension TaskStore.OperatorChange {
    /// Whether the task changed as the operator asked.
    public var changed: Bool {
        switch self {
        case .cancelled, .cancelRequested, .requeued: true
        case .publishFailed, .missing, .unchanged: false
        }
    }

    /// One task's change as `yadtq-ctl cancel|retry --json` and the web API's cancel and retry
    /// give it: `id`; `status`, the task's status now (`null` for an unknown id); `changed`;
    /// then `change` (`cancelled` with `from`, the status it had; `cancel_requested`;
    /// `requeued`) or, when nothing changed, `error`.
    public func json(id: String) -> JSONValue {
        var fields = Self.fields(id: id, status: status, changed: changed)
        switch self {
        case .cancelled(let from):
            fields["change"] = "cancelled"
            fields["from"] = .string(from.rawValue)
        case .cancelRequested: fields["change"] = "cancel_requested"
        case .requeued: fields["change"] = "requeued"
        case .publishFailed(let reason): fields["error"] = .string(reason)
        case .missing: fields["error"] = .string("no task with id '\(id)'")
        case .unchanged(let status): fields["error"] = .string("a \(status.rawValue) task cannot be changed this way")
        }
        return .object(fields)
    }

    /// A task `yadtq-ctl purge` deleted, in the form of ``json(id:)``: `status` is the status
    /// it had, and `change` is `deleted`.
    public static func deletedJSON(id: String, status: TaskStatus) -> JSONValue {
        var fields = fields(id: id, status: status, changed: true)
        fields["change"] = "deleted"
        return .object(fields)
    }

    private static func fields(id: String, status: TaskStatus?, changed: Bool) -> [String: JSONValue] {
        ["id": .string(id), "status": status.map { .string($0.rawValue) } ?? .null, "changed": .bool(changed)]
    }
}
