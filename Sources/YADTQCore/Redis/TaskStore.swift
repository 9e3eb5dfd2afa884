import Foundation
import Logging

/// What the worker learned when it asked to start a task.
public enum AttemptDecision: Sendable, Equatable {
    /// Run attempt `n` (1-based); the task is now PROCESSING.
    case run(attempt: Int)
    /// The task is already terminal (SUCCESS, FAILED or CANCELLED), or was cancelled while it
    /// waited for its next attempt (now CANCELLED): skip it, never write over it.
    case alreadyTerminal
    /// Every attempt was used up by workers that died mid-attempt: fail it for good.
    case exhausted(attempts: Int)
    /// The task is PROCESSING under an attempt of another worker (nothing was written): run
    /// it only once that attempt is known to be over (see ``AttemptElsewhere``); then
    /// ``TaskStore/begin(_:partitions:worker:at:attemptsOver:)`` takes it over.
    case runningElsewhere(RunningAttempt)
}

/// An attempt in flight, as the task's record names it: its worker and when it started
/// (epoch milliseconds, by that worker's clock).
public struct RunningAttempt: Sendable, Hashable {
    public var worker: String
    public var startedAt: Int64

    public init(worker: String, startedAt: Int64) {
        self.worker = worker
        self.startedAt = startedAt
    }

    /// As `begin` spells it: `<started_at>:<worker>`.
    var key: String { "\(startedAt):\(worker)" }

    init?(key: Substring) {
        guard let colon = key.firstIndex(of: ":"), let startedAt = Int64(key[..<colon]) else { return nil }
        self.init(worker: String(key[key.index(after: colon)...]), startedAt: startedAt)
    }
}

/// How one attempt ended, as the worker reports it in ``TaskStore/finish(_:worker:begunAt:at:)``.
public struct AttemptOutcome: Sendable {
    public enum Kind: String, Sendable {
        case success = "S"
        /// A failed attempt that will be retried.
        case retry = "R"
        /// The final failure: the task becomes FAILED.
        case failed = "F"
        /// Stopped because an operator cancelled the task: it becomes CANCELLED.
        case cancelled = "C"
    }

    public var id: String
    public var attempt: Int
    public var kind: Kind
    /// Result JSON for `.success`, the error text otherwise.
    public var payload: String
    public var logs: [String]
    public var progress: Double?
    /// The attempt is not one this worker began: every attempt was used up by workers that
    /// died mid-attempt (``AttemptDecision/exhausted(attempts:)``), and the outcome fails the
    /// task for good under the last one's number. Such an outcome is checked by the number
    /// alone; any other by its number, its worker and its start too.
    public var ofAttemptsUsedUp: Bool

    public init(
        id: String, attempt: Int, kind: Kind, payload: String, logs: [String] = [], progress: Double? = nil,
        ofAttemptsUsedUp: Bool = false
    ) {
        self.id = id
        self.attempt = attempt
        self.kind = kind
        self.payload = payload
        self.logs = logs
        self.progress = progress
        self.ofAttemptsUsedUp = ofAttemptsUsedUp
    }

    /// Logs and progress go to Redis only when there are some (see ``TaskScripts/finish``).
    var hasExtras: Bool { !logs.isEmpty || progress != nil }

    /// The outcome as ``TaskScripts/finish`` reads it from its runs: the kind's letter, in
    /// lower case when logs and progress follow the payload, then the attempt, then `x` when
    /// it is ``ofAttemptsUsedUp``.
    var runText: String {
        (hasExtras ? kind.rawValue.lowercased() : kind.rawValue) + String(attempt) + (ofAttemptsUsedUp ? "x" : "")
    }
}

/// Every task's status, result and error log in Redis. Each batch operation is one atomic
/// script call per shard it touches (one shard on a single Redis), all sent in one round trip
/// per Redis node: never a round trip per task.
///
/// - Important: Calls block the calling thread. Workers call them from their own
///   threads; async code hops to a private queue first (``run(_:)``).
public final class TaskStore: Sendable {
    let client: RedisClient
    public let keys: RedisKeys
    /// How long terminal tasks are kept; the worker's `--keep-*` flags set it.
    public let retention: Retention
    private let queue = DispatchQueue(label: "yadtq.task-store")

    /// - Parameters:
    ///   - reconnectFor: how long a call keeps retrying while Redis is down (a worker rides
    ///     out longer outages by calling again: see ``RedisOutage``).
    ///   - boundsEveryCall: `reconnectFor` bounds each call's whole time, a frozen Redis's
    ///     included (for servers that owe their clients an answer within it).
    public init(settings: YADTQSettings, logger: Logger, reconnectFor: Duration = .seconds(60), boundsEveryCall: Bool = false) {
        client = RedisClient(url: settings.redis, logger: logger, reconnectFor: reconnectFor, boundsEveryCall: boundsEveryCall)
        keys = RedisKeys(prefix: settings.keyPrefix, for: settings.redis)
        retention = settings.retention
    }

    /// Checks that Redis answers, so a command fails at start with a clear message.
    public func ping() throws {
        if let message = try client.execute(RedisCommand("PING")).errorMessage {
            throw RedisErrorReply(message).error("Redis at \(client.url) refused PING")
        }
    }

    /// Runs `script` once for each shard the tasks `ids` fall in, with that shard's keys, the
    /// shared `arguments`, then what `appendTask` adds for each of its tasks (in input order);
    /// returns one reply element per task, in the order of `ids`.
    /// - Parameter markRepeats: for the scripts that take it, append to `arguments` whether
    ///   an id occurs more than once in the call ('1' or '0'). Such a script keeps track of the
    ///   ids it has seen, so a repeated one gets the first one's answer, only when it is '1':
    ///   that bookkeeping cost Redis 3 % of its work per task, for what is rare (a message
    ///   published twice and consumed in one batch).
    /// - Parameter callArguments: what the call of one shard adds after that, given the
    ///   positions of its tasks.
    private func perShard(
        _ script: RedisScript, ids: [String], arguments: [String], markRepeats: Bool = false,
        callArguments: ([Int]) -> [String] = { _ in [] },
        waitForReplicas: Bool = false, appendTask: (inout RedisCommand, Int) -> Void
    ) throws -> [RedisReply] {
        guard !ids.isEmpty else { return [] }
        let groups = shardGroups(ids)
        let calls = groups.map { group in
            let repeats = markRepeats ? [Set(group.indices.map { ids[$0] }).count < group.indices.count ? "1" : "0"] : []
            let arguments = arguments + repeats + callArguments(group.indices)
            return Self.call(script, shard: keys[group.shard], arguments: arguments) { command in
                for index in group.indices { appendTask(&command, index) }
            }
        }
        let replies = try client.evaluate(calls, waitForReplicas: waitForReplicas)
        var result = [RedisReply](repeating: .null, count: ids.count)
        for (group, reply) in zip(groups, replies) {
            // One element for several tasks: every task got that answer (see `answers` in
            // ``TaskScripts``).
            let elements =
                reply.elements.count == 1
                ? Array(repeating: reply.elements[0], count: group.indices.count) : reply.elements
            guard elements.count == group.indices.count else {
                throw YADTQError(
                    .redis, "script \(script.name) answered \(elements.count) values for \(group.indices.count) tasks",
                    remedy: "This is a YADTQ bug; please report it")
            }
            for (index, element) in zip(group.indices, elements) { result[index] = element }
        }
        return result
    }

    /// The positions in `ids` of each shard's tasks, in input order, by shard.
    private func shardGroups(_ ids: [String]) -> [(shard: Int, indices: [Int])] {
        keys.shards == 1
            ? [(0, Array(ids.indices))]
            : Dictionary(grouping: ids.indices, by: { keys.shard(of: ids[$0]) }).sorted { $0.key < $1.key }
                .map { ($0.key, $0.value) }
    }

    /// One field of each task's record header (see ``TaskScripts/headerField``), `.null` for
    /// an unknown id: one script call per shard and 10,000 ids, so no single call holds Redis
    /// up for long however many ids are asked about.
    private func headerField(_ field: String, of ids: [String]) throws -> [RedisReply] {
        var replies: [RedisReply] = []
        replies.reserveCapacity(ids.count)
        for start in stride(from: 0, to: ids.count, by: 10_000) {
            let chunk = Array(ids[start..<min(start + 10_000, ids.count)])
            replies += try perShard(TaskScripts.headerField, ids: chunk, arguments: [field]) { command, index in
                command.append(chunk[index])
            }
        }
        return replies
    }

    /// The per-task integers of a script's replies.
    private func integers(_ replies: [RedisReply], _ script: RedisScript) throws -> [Int64] {
        try replies.map { reply in
            guard let value = reply.integer else {
                throw YADTQError(.redis, "script \(script.name) answered \(reply) for a task", remedy: "This is a YADTQ bug; please report it")
            }
            return value
        }
    }

    /// Runs `script` once per shard with the same `arguments` (no tasks); the replies by shard.
    private func everyShard(_ script: RedisScript, arguments: [String]) throws -> [RedisReply] {
        try client.evaluate(keys.allShards.map { Self.call(script, shard: $0, arguments: arguments) { _ in } })
    }

    /// One task script call on one shard: its keys, its key prefixes, the shared arguments,
    /// then whatever `appendTasks` adds (see ``TaskScripts``).
    static func call(
        _ script: RedisScript, shard: RedisKeys.Shard, arguments: [String], appendTasks: (inout RedisCommand) -> Void
    ) -> RedisClient.ScriptCall {
        var command = RedisCommand(shard.scriptPrefixes)
        for argument in arguments { command.append(argument) }
        appendTasks(&command)
        return RedisClient.ScriptCall(
            script: script, keys: shard.scriptKeys, arguments: command, replicationMarker: shard.replicated)
    }

    /// What ``queue(_:renderedArgs:dueAt:topic:)`` did with one task.
    public enum Queued: Sendable, Equatable {
        /// Now QUEUED: publish it.
        case queued
        /// Now SCHEDULED, due later: the scheduler publishes it when it is due.
        case scheduled
        /// A task with that id already exists and was left alone.
        case duplicate
    }

    /// Writes QUEUED (attempts 0) for each task, with the task's own `queuedAt`, or SCHEDULED
    /// for a task whose `dueAt` (epoch ms, 0 for at once) is after now. Returns what happened
    /// to each task, in order.
    /// - Parameter topic: the topic the tasks are published to, kept with them for the
    ///   scheduler ('' when unknown).
    public func queue(
        _ tasks: [TaskMessage], renderedArgs: [[UInt8]]? = nil, dueAt: [Int64]? = nil, topic: String = ""
    ) throws -> [Queued] {
        try queue(tasks, renderedArgs: renderedArgs, dueAt: dueAt, topic: topic, redelivered: false)
    }

    /// ``queue(_:renderedArgs:dueAt:topic:)``; `redelivered`: the tasks are messages a worker
    /// got for tasks Redis has no record of, which may have been pruned or purged before their
    /// offset was committed, and may still be in their second's listing (see ``TaskScripts/queue``).
    private func queue(
        _ tasks: [TaskMessage], renderedArgs: [[UInt8]]?, dueAt: [Int64]?, topic: String, redelivered: Bool
    ) throws -> [Queued] {
        let renderedArgs = renderedArgs ?? tasks.map(\.renderedArgs)
        precondition(renderedArgs.count == tasks.count, "one rendered argument list per task")
        precondition(dueAt.map { $0.count == tasks.count } ?? true, "one due time per task")
        let replies = try perShard(
            TaskScripts.queue, ids: tasks.map(\.id),
            arguments: [String(currentEpochMilliseconds()), topic, redelivered ? "1" : "0"],
            markRepeats: true,
            callArguments: { indices in
                Self.runs(indices.map { index in
                    let task = tasks[index]
                    return Self.queueShape(
                        maxAttempts: task.maxAttempts, queuedAt: task.queuedAt, dueAt: dueAt?[index] ?? 0, type: task.type)
                })
            }
        ) { command, index in
            command.append(tasks[index].id)
            command.append(bytes: renderedArgs[index])
        }
        return try integers(replies, TaskScripts.queue).map { value in
            switch value {
            case 1: .queued
            case 2: .scheduled
            default: .duplicate
            }
        }
    }

    /// A task's `max_attempts`, `queued_at`, `due_at` and type as one text, for the runs of
    /// ``TaskScripts/queue``: the tasks of a batch mostly share them, and the script reads each
    /// run once, where four arguments per task cost Redis its time for every task.
    /// (The numbers hold no colon, so the type is all that follows the third.)
    static func queueShape(maxAttempts: Int, queuedAt: Int64, dueAt: Int64, type: String) -> String {
        "\(maxAttempts):\(queuedAt):\(dueAt):\(type)"
    }

    /// What a call's tasks mostly share, in long runs, as the task scripts read it (see
    /// `runs_at` in ``TaskScripts``): how many runs, then each run's length and text. An
    /// argument per run instead of one per task: each argument costs Redis a string made,
    /// handed to Lua and freed, about a thousand instructions.
    static func runs(_ texts: [String]) -> [String] {
        var runs: [String] = []
        var start = texts.startIndex
        while start < texts.endIndex {
            let end = texts[start...].firstIndex { $0 != texts[start] } ?? texts.endIndex
            runs += [String(end - start), texts[start]]
            start = end
        }
        return [String(runs.count / 2)] + runs
    }

    /// A task the scheduler is to publish: due after SCHEDULED, or lost while QUEUED.
    public struct TaskToPublish: Sendable, Equatable {
        public var message: TaskMessage
        /// The topic it was queued for; `nil` when its record has none.
        public var topic: String?
    }

    /// Moves SCHEDULED tasks of `topic` that are due at `now` to QUEUED in shard `shard` (of
    /// `keys.shards`), up to `limit`; the caller publishes what it returns. `more` tells that the
    /// shard had `limit` due tasks (call again).
    ///
    /// One shard per call, and the scheduler walks them (``ShardSweep``): a call that fails on one
    /// master is replayed whole, and a replayed `release` finds nothing left to release (see
    /// ``TaskScripts/release``), so the tasks other masters had released in the same call would
    /// wait QUEUED, unpublished, for the lost-task check; and a master that fails holds back only
    /// its own shard.
    public func releaseDue(topic: String, at now: Int64, shard: Int, limit: Int = 1000) throws -> (tasks: [TaskToPublish], more: Bool) {
        let call = Self.call(TaskScripts.release, shard: keys[shard], arguments: [String(now), topic, String(limit)]) { _ in }
        let reply = try client.evaluate([call])[0]
        let values = reply.elements
        guard let taken = values.first?.integer, (values.count - 1) % 6 == 0 else {
            throw YADTQError(.redis, "script release answered \(reply)", remedy: "This is a YADTQ bug; please report it")
        }
        return (stride(from: 1, to: values.count, by: 6).compactMap { Self.taskToPublish(values[$0..<$0 + 6]) }, taken >= limit)
    }

    /// Finds QUEUED tasks (and PROCESSING ones, `includingProcessing`) of `topic` whose message
    /// is lost (see ``TaskScripts/lost``): those whose message was last sent (queued, released,
    /// retried, published again) before `cutoff`, looking at the ones queued from `from` to
    /// `to` (epoch ms) and, unless `from` is 0, at those sent again (`resent`) and, with
    /// `includingProcessing`, those in flight, in shard `shard` (of `keys.shards`), one page from
    /// `cursor` (`""`: the start). Each is marked `republished_at`, so it is returned once; the
    /// caller publishes them again, and calls again from the cursor returned while it is not
    /// `""`. `looked` is how many ids the call read.
    public func takeLost(
        topic: String, queuedFrom from: Int64, to: Int64, cutoff: Int64, includingProcessing: Bool, at now: Int64,
        shard: Int, cursor: String
    ) throws -> (tasks: [TaskMessage], cursor: String, looked: Int) {
        let arguments = [
            String(now), topic, cursor, String(from), String(to), String(cutoff), "2000", includingProcessing ? "1" : "0",
        ]
        let reply = try client.evaluate([Self.call(TaskScripts.lost, shard: keys[shard], arguments: arguments) { _ in }])[0]
        let values = reply.elements
        guard let next = values.first?.text, values.count >= 2, let looked = values[1].integer, (values.count - 2) % 5 == 0 else {
            throw YADTQError(.redis, "script lost answered \(reply)", remedy: "This is a YADTQ bug; please report it")
        }
        let tasks = stride(from: 2, to: values.count, by: 5).compactMap {
            Self.taskToPublish(values[$0..<$0 + 5] + [.null])?.message
        }
        return (tasks, next, Int(looked))
    }

    /// A task from a script's reply: id, type, args, max_attempts, queued_at, topic.
    private static func taskToPublish(_ values: ArraySlice<RedisReply>) -> TaskToPublish? {
        let fields = Array(values)
        guard let id = fields[0].text, let type = fields[1].text else { return nil }
        let args = fields[2].text.flatMap { try? JSONValue(parsing: $0) }?.arrayValue ?? []
        let message = TaskMessage(
            id: id, type: type, args: args,
            maxAttempts: fields[3].text.flatMap { Int($0) } ?? TaskMessage.defaultMaxAttempts,
            queuedAt: fields[4].text.flatMap { Int64($0) } ?? 0)
        return TaskToPublish(message: message, topic: fields[5].text.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Marks FAILED, with the reason, tasks that were queued but could not be published.
    public func failUnpublished(_ failures: [(id: String, reason: String)], at now: Int64) throws {
        _ = try perShard(
            TaskScripts.failUnpublished, ids: failures.map(\.id),
            arguments: [String(now), String(retention.failed.inMilliseconds)]
        ) { command, index in
            command.append(failures[index].id)
            command.append(failures[index].reason)
        }
    }

    /// Starts an attempt of each task (PROCESSING, attempts + 1), unless it is terminal or
    /// runs under another worker's attempt that is not among `attemptsOver`.
    /// A task Redis has no record of (published by other means, or lost) is registered
    /// from its message first.
    /// - Parameters:
    ///   - partitions: the partition each task was consumed from, kept with the task.
    ///   - attemptsOver: attempts of other workers found over (see ``AttemptElsewhere``):
    ///     a task still PROCESSING under one of them is taken over.
    public func begin(
        _ tasks: [TaskMessage], partitions: [Int32], worker: String, at now: Int64,
        attemptsOver: Set<RunningAttempt> = []
    ) throws -> [AttemptDecision] {
        precondition(partitions.count == tasks.count, "one partition per task")
        var decisions = try beginOnce(tasks, partitions: partitions, worker: worker, at: now, attemptsOver: attemptsOver)
        let missing = decisions.indices.filter { decisions[$0] == nil }
        if !missing.isEmpty {
            _ = try queue(missing.map { tasks[$0] }, renderedArgs: nil, dueAt: nil, topic: "", redelivered: true)
            let retried = try beginOnce(
                missing.map { tasks[$0] }, partitions: missing.map { partitions[$0] }, worker: worker, at: now,
                attemptsOver: attemptsOver)
            for (index, decision) in zip(missing, retried) { decisions[index] = decision }
        }
        return try decisions.map { decision in
            guard let decision else {
                throw YADTQError(.redis, "a task record vanished while it was being registered", remedy: "Check that nothing else deletes YADTQ's keys")
            }
            return decision
        }
    }

    /// How `begin` starts its answer for a task running under another worker's attempt.
    private static let runningPrefix = "running:"

    /// One `begin` call; `nil` for a task with no record.
    private func beginOnce(
        _ tasks: [TaskMessage], partitions: [Int32], worker: String, at now: Int64, attemptsOver: Set<RunningAttempt>
    ) throws -> [AttemptDecision?] {
        let over = [String(attemptsOver.count)] + attemptsOver.map(\.key)
        // On a cluster with replicas, PROCESSING reaches a replica before the attempt runs: a
        // failover must not lose the attempt count its finish will be checked against.
        let replies = try perShard(
            TaskScripts.begin, ids: tasks.map(\.id),
            arguments: [String(now), worker, String(retention.failed.inMilliseconds)], markRepeats: true,
            callArguments: { over + Self.runs($0.map { String(partitions[$0]) }) },
            waitForReplicas: true
        ) { command, index in
            command.append(tasks[index].id)
        }
        return try replies.map { reply in
            if let text = reply.text, text.hasPrefix(Self.runningPrefix) {
                guard let attempt = RunningAttempt(key: text.dropFirst(Self.runningPrefix.count)) else {
                    throw YADTQError(
                        .redis, "script begin answered '\(text)', not a running attempt",
                        remedy: "This is a YADTQ bug; please report it")
                }
                return .runningElsewhere(attempt)
            }
            guard let value = reply.integer else { return nil }
            switch value {
            case 0: return .alreadyTerminal
            case ..<0: return .exhausted(attempts: Int(-value))
            default: return .run(attempt: Int(value))
            }
        }
    }

    /// Records how attempts ended. Returns, per outcome, whether it was written (`false`:
    /// stale, because the task is terminal or runs under another attempt: a later one,
    /// another worker's, or one begun after an operator's retry).
    /// - Parameter begunAt: the time of the ``begin(_:partitions:worker:at:attemptsOver:)``
    ///   call that began these attempts (a worker's batch begins all of its attempts in one
    ///   call, and those it takes over in another with the same time): with the attempt's
    ///   number and worker, it names the attempt an outcome is of.
    @discardableResult
    public func finish(_ outcomes: [AttemptOutcome], worker: String, begunAt: Int64, at now: Int64) throws -> [Bool] {
        // On a cluster with replicas, the terminal writes reach a replica before the caller
        // commits the offsets behind them: a master that dies right after cannot take them along.
        let replies = try perShard(
            TaskScripts.finish, ids: outcomes.map(\.id),
            arguments: [
                String(now), worker, String(retention.succeeded.inMilliseconds),
                String(retention.failed.inMilliseconds), String(begunAt),
            ], markRepeats: true,
            callArguments: { Self.runs($0.map { outcomes[$0].runText }) },
            waitForReplicas: true
        ) { command, index in
            let outcome = outcomes[index]
            command.append(outcome.id)
            command.append(outcome.payload)
            if outcome.hasExtras {
                command.append(
                    outcome.logs.isEmpty ? "" : JSONValue.array(outcome.logs.map(JSONValue.string)).jsonString)
                command.append(outcome.progress.map { String($0) } ?? "")
            }
        }
        return try integers(replies, TaskScripts.finish).map { $0 == 1 }
    }

    /// What an operator's ``cancel(_:at:)`` or ``requeue(_:at:)`` did to one task.
    public enum OperatorChange: Sendable, Equatable {
        /// QUEUED or SCHEDULED (`from`), now CANCELLED.
        case cancelled(from: TaskStatus)
        /// PROCESSING: its worker stops the attempt within a second, and it ends CANCELLED
        /// (unless it succeeded first).
        case cancelRequested
        /// FAILED or CANCELLED, now QUEUED again (to be published again).
        case requeued
        /// Queued again, but the broker did not take it: FAILED again with this reason.
        case publishFailed(String)
        /// No such task.
        case missing
        /// Left alone: the task is in this status, which does not allow the change.
        case unchanged(TaskStatus)

        /// The task's status after the change (`nil`: no such task), as `yadtq-ctl` and the web
        /// API both report it.
        public var status: TaskStatus? {
            switch self {
            case .cancelled: .cancelled
            case .cancelRequested: .processing
            case .requeued: .queued
            case .publishFailed: .failed
            case .missing: nil
            case .unchanged(let status): status
            }
        }

        init(reply: RedisReply) {
            switch reply.text {
            case "cancelled": self = .cancelled(from: .queued)
            case "unscheduled": self = .cancelled(from: .scheduled)
            case "requested": self = .cancelRequested
            case "queued": self = .requeued
            case let text?: self = TaskStatus(rawValue: text).map(Self.unchanged) ?? .missing
            case nil: self = .missing
            }
        }
    }

    /// Cancels tasks: a QUEUED or SCHEDULED one becomes CANCELLED (and never runs); a
    /// PROCESSING one gets a cancel request, which the worker running it sees within a second
    /// (``cancelRequested(_:)``) and stops the attempt, ending it CANCELLED (unless it
    /// succeeded first); a terminal one is left alone.
    public func cancel(_ ids: [String], at now: Int64) throws -> [OperatorChange] {
        try Self.oncePerID(ids) { ids in
            try perShard(TaskScripts.cancel, ids: ids, arguments: [String(now), String(retention.failed.inMilliseconds)]) {
                command, index in command.append(ids[index])
            }.map(OperatorChange.init(reply:))
        }
    }

    /// Runs `change` on the distinct ids of `ids` and gives each id its answer: an id named
    /// twice (`yadtq-ctl cancel t1 t1`) is one task, changed once. A script reads every task
    /// of its call before it writes any, so a repeat was changed again, and counted twice.
    static func oncePerID<Answer>(_ ids: [String], _ change: ([String]) throws -> [Answer]) rethrows -> [Answer] {
        var seen = Set<String>()
        let distinct = ids.filter { seen.insert($0).inserted }
        guard distinct.count < ids.count else { return try change(ids) }
        let answers = Dictionary(uniqueKeysWithValues: zip(distinct, try change(distinct)))
        return ids.map { answers[$0]! }
    }

    /// Which of these tasks have a cancel request (an operator's ``cancel(_:at:)`` while they
    /// were PROCESSING, or before): the worker running them stops their attempts. One round
    /// trip for all of them (one pipeline per Redis node), whatever their number; only the
    /// flags come back, not the records. Unknown ids are not in the answer.
    public func cancelRequested(_ ids: [String]) throws -> Set<String> {
        let requested = try headerField("cancel_requested", of: ids)
        return Set(zip(ids, requested).compactMap { id, reply in (reply.integer ?? 0) > 0 ? id : nil })
    }

    /// Queues FAILED or CANCELLED tasks again under their ids (attempts 0, earlier errors
    /// kept); the caller publishes them again. Other tasks are left alone.
    public func requeue(_ ids: [String], at now: Int64) throws -> [OperatorChange] {
        try Self.oncePerID(ids) { ids in
            try perShard(TaskScripts.requeue, ids: ids, arguments: [String(now)]) { command, index in
                command.append(ids[index])
            }.map(OperatorChange.init(reply:))
        }
    }

    /// Deletes the kept tasks in the terminal `status` (of `type`, when given, and finished
    /// at or before `finishedBy`, when given), with their index entries and counts; returns
    /// the ids of those deleted (a call replayed after a lost connection names only what the
    /// replay found still there).
    public func purge(status: TaskStatus, type: String?, finishedBy: Int64?) throws -> [String] {
        precondition(status.isTerminal, "only terminal tasks are purged")
        var deleted: [String] = []
        for shard in keys.allShards {
            var from = ""
            while from != "-1" {
                let arguments = [status.rawValue, type ?? "", finishedBy.map(String.init) ?? "", from, "5000"]
                let reply = try client.evaluate([Self.call(TaskScripts.purge, shard: shard, arguments: arguments) { _ in }])[0]
                let values = reply.elements
                guard values.count == 2, let next = values[0].integer else {
                    throw YADTQError(.redis, "script purge answered \(reply)", remedy: "This is a YADTQ bug; please report it")
                }
                deleted += values[1].elements.compactMap(\.text)
                from = String(next)
            }
        }
        return deleted
    }

    /// The status of each task (`nil` for an unknown id).
    public func statuses(of ids: [String]) throws -> [TaskStatus?] {
        try headerField("status", of: ids).map { $0.text.flatMap(TaskStatus.init(rawValue:)) }
    }

    /// Everything about one task, or `nil` when there is no such task.
    public func record(id: String) throws -> TaskRecord? {
        try records(ids: [id])[0]
    }

    /// Several tasks' records, a task in flight with its `running` entry merged in: two
    /// HMGETs per shard and 10,000 ids, in one round trip per node.
    public func records(ids: [String]) throws -> [TaskRecord?] {
        var commands: [RedisCommand] = []
        var owners: [[Int]] = []
        for (shard, indices) in shardGroups(ids) {
            for start in stride(from: 0, to: indices.count, by: 10_000) {
                let chunk = Array(indices[start..<min(start + 10_000, indices.count)])
                commands.append(RedisCommand(["HMGET", keys[shard].records] + chunk.map { ids[$0] }))
                commands.append(RedisCommand(["HMGET", keys[shard].running] + chunk.map { ids[$0] }))
                owners.append(chunk)
            }
        }
        var records = [TaskRecord?](repeating: nil, count: ids.count)
        // Per chunk, two replies: its records, then its `running` entries.
        let replies = try client.execute(commands, or: "Reading task records")
        for (n, chunk) in owners.enumerated() {
            let (stored, entries) = (replies[2 * n], replies[2 * n + 1])
            for (index, (value, entry)) in zip(chunk, zip(stored.elements, entries.elements)) {
                guard case .string(let bytes) = value else { continue }
                var running: [UInt8]?
                if case .string(let entryBytes) = entry { running = entryBytes }
                records[index] = TaskRecordCoding.decode(id: ids[index], bytes, running: running)
            }
        }
        return records
    }

    /// How many tasks are in each status, from the counters the task scripts keep.
    public func counts() throws -> [TaskStatus: Int] {
        try statusCounters(\.counts, TaskStatus.allCases)
    }

    /// What each check for lost tasks weighs (``LostTaskRule/check(now:partitions:queued:processing:sentAgain:)``),
    /// in one round trip per node: the tasks QUEUED and PROCESSING, and how many ids `resent`
    /// holds over the shards (the tasks sent again, or written late, that the check has yet to
    /// find started, ended or pruned).
    public func lostCheckCounts() throws -> (queued: Int, processing: Int, sentAgain: Int) {
        let statuses = [TaskStatus.queued, .processing].map(\.rawValue)
        let replies = try client.execute(
            keys.allShards.flatMap { [RedisCommand(["HMGET", $0.counts] + statuses), RedisCommand(["ZCARD", $0.resent])] },
            or: "Reading the counts of unfinished tasks")
        var sums = (queued: 0, processing: 0, sentAgain: 0)
        for pair in stride(from: 0, to: replies.count, by: 2) {
            let counts = replies[pair].elements.map(\.counter)
            sums.queued += counts.first ?? 0
            sums.processing += counts.dropFirst().first ?? 0
            sums.sentAgain += replies[pair + 1].counter
        }
        return sums
    }

    /// How many tasks ever finished in each terminal status (not lowered when a finished
    /// task expires).
    public func finishedCounts() throws -> [TaskStatus: Int] {
        try statusCounters(\.finished, TaskStatus.allCases.filter(\.isTerminal))
    }

    private func statusCounters(_ key: KeyPath<RedisKeys.Shard, String>, _ statuses: [TaskStatus]) throws
        -> [TaskStatus: Int]
    {
        let sums = try summed(key, fields: statuses.map(\.rawValue))
        return Dictionary(uniqueKeysWithValues: statuses.map { ($0, sums[$0.rawValue] ?? 0) })
    }

    /// Fields of a counting hash (`counts`, `finished`, `types`) summed over the shards, in
    /// one round trip per node; a missing field is 0.
    func summed(_ key: KeyPath<RedisKeys.Shard, String>, fields: [String]) throws -> [String: Int] {
        var sums = Dictionary(uniqueKeysWithValues: fields.map { ($0, 0) })
        guard !fields.isEmpty else { return sums }
        for reply in try client.execute(keys.allShards.map { RedisCommand(["HMGET", $0[keyPath: key]] + fields) }, or: "Reading counters") {
            for (field, value) in zip(fields, reply.elements) { sums[field]! += value.counter }
        }
        return sums
    }

    /// Deletes up to `limit` tasks whose retention has ended (with their index entries and
    /// counts); returns how many are still due. The task scripts prune as they write; this
    /// is for the quiet times, when nothing else writes.
    @discardableResult
    public func prune(at now: Int64, limit: Int = 10_000) throws -> Int {
        try everyShard(TaskScripts.prune, arguments: [String(now), String(limit)]).reduce(0) {
            $0 + $1.counter
        }
    }

    /// Runs a blocking store call on the store's private queue, off the cooperative pool.
    /// - Parameter deadline: when the caller's answer is due. The queue runs one call at a
    ///   time, so a call may reach its front late (see ``within(_:_:)``).
    public func run<T: Sendable>(
        by deadline: CallDeadline? = nil, _ body: @escaping @Sendable (TaskStore) throws -> T
    ) async throws -> T {
        try await queue.perform { try self.within(deadline) { try body(self) } }
    }

    /// Runs `body`, whose calls of this store wait for Redis only until `deadline` (at least
    /// 100 ms each); past `deadline` already, it throws ``CallDeadline/Expired`` without
    /// running `body`, so nothing reaches Redis.
    /// - Important: For a store whose calls all come from one serial queue (``run(by:_:)``'s,
    ///   or the queue a server runs its publisher's work on): calls from another thread
    ///   meanwhile would share the deadline.
    public func within<T>(_ deadline: CallDeadline?, _ body: () throws -> T) throws -> T {
        guard let deadline else { return try body() }
        if deadline.hasPassed(at: .now) { throw CallDeadline.Expired() }
        return try client.within(deadline.instant, body)
    }
}
