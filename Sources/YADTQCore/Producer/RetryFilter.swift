/// Which kept tasks an operator's bulk retry queues again: those in one status, FAILED or
/// CANCELLED, optionally of one type, optionally only those that finished within `since`.
/// The one set of rules behind `yadtq-ctl retry --failed|--cancelled [--type T] [--since D]`
/// and `POST /api/tasks/retry`; ``TaskPublisher/retry(matching:limit:pacing:)`` applies it.
public struct RetryFilter: Sendable, Equatable {
    /// FAILED or CANCELLED: the statuses a task can be retried from.
    public let status: TaskStatus
    public let type: String?
    /// Only tasks that finished at most this long ago.
    public let since: Duration?

    /// A filter that cannot be applied, with what to write instead.
    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// The statuses a retry takes tasks from.
    public static let retryable: [TaskStatus] = [.failed, .cancelled]

    public init(status: TaskStatus = .failed, type: String? = nil, since: Duration? = nil) throws(Invalid) {
        guard Self.retryable.contains(status) else {
            throw Invalid("only FAILED or CANCELLED tasks can be retried, not \(status.rawValue) ones")
        }
        if let type, let problem = TaskDeclaration.typeFilterProblem(type) { throw Invalid(problem) }
        if let since, since <= .zero { throw Invalid("since must be a positive duration, such as \"1h\"") }
        self.status = status
        self.type = type
        self.since = since
    }

    /// Reads a filter from a JSON object: `{"status": "FAILED", "type": "div", "since": "1h"}`;
    /// `status` is required (FAILED or CANCELLED, any case), `type` and `since` (a duration as
    /// `1h` or a number of seconds) are optional. Unknown fields are refused, so a typo never
    /// widens a retry.
    public init(json: JSONValue) throws(Invalid) {
        let example = #"{"status": "FAILED", "type": "div", "since": "1h"}"#
        guard case .object(let fields) = json else { throw Invalid("send the filter as a JSON object, such as \(example)") }
        if let unknown = fields.keys.filter({ !["status", "type", "since"].contains($0) }).sorted().first {
            throw Invalid("unknown filter field '\(unknown)': a filter has status, type and since, as in \(example)")
        }
        guard case .string(let statusText)? = fields["status"] else {
            throw Invalid("name the status to retry: \"status\": \"FAILED\" or \"CANCELLED\", as in \(example)")
        }
        guard let status = TaskStatus(rawValue: statusText.uppercased()) else {
            throw Invalid("unknown status '\(statusText)': retry FAILED or CANCELLED tasks")
        }
        var type: String?
        switch fields["type"] {
        case nil, .null?: type = nil
        case .string(let text)?: type = text
        case let other?: throw Invalid("type must be a task type name as a string, not \(other.jsonString)")
        }
        var since: Duration?
        switch fields["since"] {
        case nil, .null?: since = nil
        case .string(let text)?:
            guard let parsed = Duration(parsing: text) else {
                throw Invalid("since '\(text)' is not a duration: write it as 90s, 30m, 2h, 7d or a number of seconds")
            }
            since = parsed
        case let other?:
            guard let parsed = Duration(json: other) else {
                throw Invalid(
                    "since must be a positive duration, such as \"1h\" or a number of seconds below 10^12, not \(other.jsonString)")
            }
            since = parsed
        }
        try self.init(status: status, type: type, since: since)
    }

    /// Whether the filter takes `record`, at `now` (epoch milliseconds).
    public func matches(_ record: TaskRecord, now: Int64) -> Bool {
        record.status == status && (type == nil || record.type == type)
            && since.map { (record.finishedAt ?? 0) >= now - $0.inMilliseconds } ?? true
    }

    /// The ids of the kept tasks the filter takes, newest first, each once (a task retried while
    /// the pages are read may turn up on a later page too): at most `limit` of them, and whether
    /// more match.
    public func matchingIDs(in store: TaskStore, now: Int64, limit: Int? = nil) throws -> (ids: [String], more: Bool) {
        var ids: [String] = []
        var seen = Set<String>()
        var cursor: String? = nil
        repeat {
            let page = try store.taskPage(status: status, type: type, cursor: cursor, limit: 1000)
            for record in page.records where matches(record, now: now) && !seen.contains(record.id) {
                if let limit, ids.count >= limit { return (ids, true) }
                seen.insert(record.id)
                ids.append(record.id)
            }
            cursor = page.nextCursor
        } while cursor != nil
        return (ids, false)
    }
}

extension TaskPublisher {
    /// What a bulk retry did: one change per id, in the order the tasks were found (newest
    /// first), and whether more tasks matched than it took (over the limit, or left for lack
    /// of time).
    public struct BulkRetry: Sendable {
        public var ids: [String]
        public var changes: [TaskStore.OperatorChange]
        public var more: Bool
    }

    /// Queues again, and publishes again, every kept task `filter` takes (at most `limit`),
    /// ``retryChunkSize`` tasks at a time; with `pacing`, only the chunks it starts (the tasks
    /// found and left are `more`).
    public func retry(matching filter: RetryFilter, limit: Int? = nil, pacing: BulkRetryPacing? = nil) throws -> BulkRetry {
        let (ids, more) = try filter.matchingIDs(in: store, now: currentEpochMilliseconds(), limit: limit)
        let changes = try retryChunks(of: ids, pacing: pacing)
        return BulkRetry(ids: Array(ids[..<changes.count]), changes: changes, more: more || changes.count < ids.count)
    }
}
