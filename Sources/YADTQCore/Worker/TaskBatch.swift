/// One batch's way through a worker, as a value: which tasks to mark PROCESSING, which of
/// them to run once Redis has answered, what to record once they have run, and what the
/// batch settled. It performs no I/O; the worker's batch thread does what it says:
///
/// ```
/// let decisions = try store.begin(batch.tasks.map(\.message), ...)   // PROCESSING
/// let jobs = batch.begun(decisions)
/// let record = batch.ran(pool.run(jobs).map(\.outcome), now: .now)
/// publish(record.deadLetters); batch.finished(written: try store.finish(record.outcomes, ...))
/// if !batch.statusChecks.isEmpty { batch.statusesRead(try store.statuses(of: batch.statusChecks)) }
/// for (marker, partitions) in batch.markersReached() { try store.recordEndReached(...) }
/// batch.markersRecorded(); machine.batchFinished(batch.result, ...)
/// ```
public struct TaskBatch: Sendable, Equatable {
    /// The tasks to begin (new messages and retries now due), in topic order, each once.
    public private(set) var tasks: [BatchTask]
    /// Tasks whose statuses to read (see ``AwaitedTasks``).
    public let statusChecks: [String]
    /// End markers polled with this batch or held from earlier ones.
    public private(set) var markers: [EndMarker]
    /// Partitions where a task waits for a retry outside this batch.
    private let waitingPartitions: Set<Int32>
    /// The tasks awaited (see ``AwaitedTasks``) before this batch, with the partitions of
    /// their positions.
    private let awaitedPartitions: [String: Set<Int32>]
    private let retry: RetryPolicy
    private var stage = Stage.beginning
    private var runnable: [BatchTask] = []
    private var outcomes: [AttemptOutcome] = []
    /// The task of each outcome (same order).
    private var outcomeTasks: [BatchTask] = []
    private var deadLetters: [DeadLetter] = []
    /// Of `outcomes`, where those of the attempts that ran start (the ones before failed
    /// without an attempt), and how each attempt that ran ended.
    private var attemptsFrom = 0
    private var attemptKinds: [AttemptOutcome.Kind] = []
    /// Positions settled whatever `finish` answers: tasks already terminal in Redis.
    private var alreadyTerminal: [TaskPosition] = []
    private var retries: [WaitingRetry] = []
    /// Tasks running under another worker's attempt (``AttemptElsewhere``).
    private var runningElsewhere: [BatchTask] = []
    private var rechecks: [WaitingRetry] = []
    public private(set) var result = BatchResult()

    enum Stage: Sendable, Equatable { case beginning, running, recording, settling, done }

    /// - Rule: a task whose message came more than once in the batch (it was published twice)
    ///   is begun and run once, and its outcome settles every copy's position: begun twice, both
    ///   copies would run under one attempt, and the second outcome would be refused.
    public init(
        tasks: [BatchTask], markers: [EndMarker], waitingPartitions: Set<Int32>, retry: RetryPolicy,
        statusChecks: [String] = [], awaitedPartitions: [String: Set<Int32>] = [:]
    ) {
        var merged: [BatchTask] = []
        var indexOfID: [String: Int] = [:]
        for task in tasks {
            if let index = indexOfID[task.message.id] {
                merged[index].copies += task.positions
            } else {
                indexOfID[task.message.id] = merged.count
                merged.append(task)
            }
        }
        self.tasks = merged
        self.statusChecks = statusChecks
        self.markers = markers
        self.waitingPartitions = waitingPartitions
        self.awaitedPartitions = awaitedPartitions
        self.retry = retry
    }

    /// A task that failed an attempt and waits out its backoff, or that runs under another
    /// worker's attempt and waits to be begun again (``AttemptElsewhere``).
    public struct WaitingRetry: Sendable, Hashable {
        public var task: BatchTask
        public var due: ContinuousClock.Instant
        /// The task runs under another worker's attempt: it is begun again to see whether
        /// that one has ended, which uses no attempt of its own.
        public var runsElsewhere = false

        /// See ``BatchTask/keeping(allBut:)``.
        func keeping(allBut partitions: Set<Int32>) -> WaitingRetry? {
            task.keeping(allBut: partitions).map { WaitingRetry(task: $0, due: due, runsElsewhere: runsElsewhere) }
        }
    }

    /// A finally failed task and the error its dead-letter copy carries.
    public struct DeadLetter: Sendable, Hashable {
        public var task: BatchTask
        public var error: String
    }

    /// What to record after the attempts ran. The dead-letter copies go out before FAILED
    /// is written: should the worker die in between, the task is redelivered and its copy
    /// sent again, never lost.
    public struct Record: Sendable, Equatable {
        public var deadLetters: [DeadLetter]
        public var outcomes: [AttemptOutcome]
        /// What was decided for each attempt that ran, in the order the attempts were given.
        public var attemptKinds: [AttemptOutcome.Kind]
        /// How many of `deadLetters`, at their start, are of tasks that failed without running
        /// (attempts used up by dead workers, poison messages).
        public var failedWithoutAttempt: Int
    }

    /// Redis answered `begin` (one decision per task, in order); returns the attempts to run.
    /// - Rule: a task already SUCCESS or FAILED is skipped and never written again; one whose
    ///   every attempt was interrupted fails (``ExhaustedAttempts``); a poison message fails
    ///   on its first attempt (``PoisonMessage``); one running under another worker's attempt
    ///   is not run, and is begun again later (``AttemptElsewhere``).
    public mutating func begun(_ decisions: [AttemptDecision]) -> [BatchTask] {
        precondition(stage == .beginning && decisions.count == tasks.count, "one decision per task, once")
        stage = .running
        for (task, decision) in zip(tasks, decisions) {
            switch decision {
            case .alreadyTerminal:
                alreadyTerminal += task.positions
            case .runningElsewhere:
                runningElsewhere.append(task)
            case .exhausted(let attempts):
                var task = task
                task.attempt = attempts
                fail(task, attempt: attempts, reason: ExhaustedAttempts.reason(attempts: attempts), ofAttemptsUsedUp: true)
            case .run(let attempt):
                var task = task
                task.attempt = attempt
                if let poison = task.poison {
                    fail(task, attempt: attempt, reason: poison)
                } else {
                    runnable.append(task)
                }
            }
        }
        return runnable
    }

    private mutating func fail(
        _ task: BatchTask, attempt: Int, reason: String, logs: [String] = [], progress: Double? = nil,
        ofAttemptsUsedUp: Bool = false
    ) {
        outcomes.append(
            AttemptOutcome(
                id: task.message.id, attempt: attempt, kind: .failed, payload: reason, logs: logs, progress: progress,
                ofAttemptsUsedUp: ofAttemptsUsedUp))
        outcomeTasks.append(task)
        deadLetters.append(DeadLetter(task: task, error: reason))
    }

    /// The attempts ran (one outcome per task `begun` returned, in order) and ended at `now`.
    /// - Rule: a failed attempt is retried after its backoff (``RetryPolicy``) unless it was the
    ///   last or the failure is permanent; then the task fails and gets a dead-letter copy. An
    ///   attempt stopped because its task was cancelled ends it CANCELLED: no retry, no copy.
    public mutating func ran(_ results: [PluginOutcome], now: ContinuousClock.Instant) -> Record {
        precondition(stage == .running && results.count == runnable.count, "one outcome per attempt, once")
        stage = .recording
        attemptsFrom = outcomes.count
        rechecks = runningElsewhere.map { WaitingRetry(task: $0, due: now + AttemptElsewhere.recheck, runsElsewhere: true) }
        attemptKinds.reserveCapacity(results.count)
        for (task, outcome) in zip(runnable, results) {
            switch outcome {
            case .success(let value, let logs, let progress):
                outcomes.append(
                    AttemptOutcome(
                        id: task.message.id, attempt: task.attempt, kind: .success, payload: value.jsonString, logs: logs,
                        progress: progress))
                outcomeTasks.append(task)
                attemptKinds.append(.success)
            case .failure(let failure, let logs, let progress) where failure.isCancelled:
                outcomes.append(
                    AttemptOutcome(
                        id: task.message.id, attempt: task.attempt, kind: .cancelled,
                        payload: ErrorText.trimmed(failure.message), logs: logs, progress: progress))
                outcomeTasks.append(task)
                attemptKinds.append(.cancelled)
            case .failure(let failure, let logs, let progress):
                let message = ErrorText.trimmed(failure.message)
                switch retry.decide(attempt: task.attempt, maxAttempts: task.message.maxAttempts, permanent: failure.isPermanent) {
                case .retry(let after):
                    outcomes.append(
                        AttemptOutcome(
                            id: task.message.id, attempt: task.attempt, kind: .retry, payload: message, logs: logs,
                            progress: progress))
                    outcomeTasks.append(task)
                    retries.append(WaitingRetry(task: task, due: now + after))
                    attemptKinds.append(.retry)
                case .fail:
                    fail(task, attempt: task.attempt, reason: message, logs: logs, progress: progress)
                    attemptKinds.append(.failed)
                }
            }
        }
        return record
    }

    private var record: Record {
        Record(deadLetters: deadLetters, outcomes: outcomes, attemptKinds: attemptKinds, failedWithoutAttempt: attemptsFrom)
    }

    /// The tasks whose attempt failed (to be retried, or failed for good): their cancel
    /// requests are read before the dead-letter copies go out (``cancelsRead(_:)``).
    public var failedAttempts: [String] {
        precondition(stage == .recording, "after the attempts ran")
        return outcomes[attemptsFrom...].filter { Self.isFailedAttempt($0.kind) }.map(\.id)
    }

    /// The cancel requests of ``failedAttempts`` were read: `requested` have one. Returns the
    /// record to write instead of the one ``ran(_:now:)`` returned.
    /// - Rule: a task cancelled while its attempt ran ends CANCELLED unless the attempt
    ///   succeeded, also when the attempt failed on its own before the cancel watch stopped it:
    ///   no retry, no dead-letter copy (`finish` would end it CANCELLED anyway).
    public mutating func cancelsRead(_ requested: Set<String>) -> Record {
        precondition(stage == .recording, "after the attempts ran, before they are recorded")
        // A task is in a batch once (see init), so its id names its retry or dead-letter copy.
        var cancelled: Set<String> = []
        for index in outcomes.indices[attemptsFrom...]
        where Self.isFailedAttempt(outcomes[index].kind) && requested.contains(outcomes[index].id) {
            outcomes[index].kind = .cancelled
            attemptKinds[index - attemptsFrom] = .cancelled
            cancelled.insert(outcomes[index].id)
        }
        retries.removeAll { cancelled.contains($0.task.message.id) }
        deadLetters.removeAll { cancelled.contains($0.task.message.id) }
        return record
    }

    private static func isFailedAttempt(_ kind: AttemptOutcome.Kind) -> Bool { kind == .retry || kind == .failed }

    /// Redis answered `finish` (whether each outcome was written, in order).
    /// - Rule: an offset is settled only when its task is terminal in Redis: an outcome Redis
    ///   refused (the task is terminal already, or a later attempt owns it) settles nothing and
    ///   its task is awaited (``AwaitedTasks``), and a retry Redis refused is not scheduled.
    public mutating func finished(written: [Bool]) {
        precondition(stage == .recording && written.count == outcomes.count, "one answer per outcome, once")
        stage = .settling
        var settled = alreadyTerminal
        var scheduled: [WaitingRetry] = []
        var retryIndex = 0
        for (index, (outcome, task)) in zip(outcomes, outcomeTasks).enumerated() {
            let wasWritten = written[index]
            if !wasWritten { result.refused.append(task) }
            switch outcome.kind {
            case .retry:
                if wasWritten { scheduled.append(retries[retryIndex]) }
                retryIndex += 1
            case .success:
                if wasWritten {
                    settled += task.positions
                    result.succeeded += 1
                }
            case .failed:
                if wasWritten {
                    settled += task.positions
                    result.failed += 1
                }
            case .cancelled:
                if wasWritten {
                    settled += task.positions
                    result.cancelled += 1
                }
            }
        }
        result.settled = settled
        result.retries = scheduled + rechecks
    }

    /// Skips Redis for a batch with no task (only end markers).
    public mutating func finishedWithoutTasks(now: ContinuousClock.Instant) {
        precondition(tasks.isEmpty && stage == .beginning)
        _ = begun([])
        _ = ran([], now: now)
        finished(written: [])
    }

    /// Redis answered the reading of ``statusChecks`` (one status per task, in order; `nil`:
    /// unknown).
    public mutating func statusesRead(_ statuses: [TaskStatus?]) {
        precondition(stage == .settling && statuses.count == statusChecks.count, "one status per task, once")
        result.terminal = Set(zip(statusChecks, statuses).filter { $0.1?.isTerminal ?? true }.map(\.0))
    }

    /// After ``finished(written:)`` and, when there are ``statusChecks``, ``statusesRead(_:)``:
    /// the end markers reached, marker → partitions, to record in Redis before the batch is
    /// settled; the others are held (``HeldEndMarkers``) behind the tasks that still wait on
    /// their partitions: a retry, or an awaited task (refused in this batch, or awaited before
    /// and not found terminal by this batch's reading).
    public mutating func markersReached() -> [String: [Int32]] {
        precondition(stage == .settling, "after the outcomes and statuses are in")
        let awaited = awaitedPartitions.filter { !result.terminal.contains($0.key) }.values.joined()
        let waiting = waitingPartitions
            .union(result.retries.flatMap(\.task.positions).map(\.partition))
            .union(result.refused.flatMap(\.positions).map(\.partition))
            .union(awaited)
        let split = HeldEndMarkers.split(markers, waitingPartitions: waiting)
        result.settled += split.reachedPositions
        result.heldMarkers = split.held
        return split.reached
    }

    /// Marks the reached markers recorded; after this ``result`` is complete.
    public mutating func markersRecorded() {
        precondition(stage == .settling)
        stage = .done
        result.complete = true
    }
}

/// What a batch settled, for ``BatchStateMachine/batchFinished(_:now:)``.
public struct BatchResult: Sendable, Equatable {
    /// Positions whose task is terminal in Redis (or whose end marker is recorded).
    public var settled: [TaskPosition] = []
    /// Tasks waiting out a retry backoff.
    public var retries: [TaskBatch.WaitingRetry] = []
    /// End markers still behind a waiting retry.
    public var heldMarkers: [EndMarker] = []
    /// Tasks whose outcome Redis refused, with their positions: to await (``AwaitedTasks``).
    public var refused: [BatchTask] = []
    /// Of ``TaskBatch/statusChecks``, the tasks found terminal or unknown.
    public var terminal: Set<String> = []
    public var succeeded = 0
    public var failed = 0
    /// Attempts stopped because their task was cancelled, now CANCELLED.
    public var cancelled = 0
    /// Whether every step of the batch was done (set by ``TaskBatch/markersRecorded()``).
    public var complete = false

    public init() {}
}

extension AttemptOutcome: Equatable {
    public static func == (lhs: AttemptOutcome, rhs: AttemptOutcome) -> Bool {
        lhs.id == rhs.id && lhs.attempt == rhs.attempt && lhs.kind == rhs.kind && lhs.payload == rhs.payload
            && lhs.logs == rhs.logs && lhs.progress == rhs.progress && lhs.ofAttemptsUsedUp == rhs.ofAttemptsUsedUp
    }
}
