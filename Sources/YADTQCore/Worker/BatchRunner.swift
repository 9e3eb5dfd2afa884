import Foundation
import Logging

/// Performs one ``TaskBatch`` on the batch thread: marks its tasks PROCESSING, runs the
/// attempts on the ``ExecutorPool``, publishes the dead-letter copies, records the outcomes
/// and the end markers reached, and reads the statuses of the tasks awaited. Every Redis call
/// is replay-safe, so a failing one is tried again with the same arguments until it succeeds
/// or the ``RedisOutage`` rule gives up (past its limit; a refusal every worker meets has
/// none, unless a stop was asked for); then the batch is abandoned and settles nothing.
struct BatchRunner: Sendable {
    let store: TaskStore
    let pool: ExecutorPool
    let producer: KafkaProducer
    let worker: String
    let topic: String
    let deadLetterTopic: String
    /// The partitions the dead-letter topic is made with when it is missing.
    let deadLetterPartitions: Int
    let outageLimit: Duration
    let metrics: WorkerMetrics
    /// Where the batch in hand is shown to the heartbeat (see ``AttemptElsewhere``).
    let activity: WorkerActivity
    let logger: Logger
    let shouldStop: @Sendable () -> Bool

    /// Redis could not be written within the outage limit (or refused every client while a
    /// stop was asked for).
    struct Abandoned: Error, CustomStringConvertible {
        var cause: any Error
        var description: String { "\(cause)" }
    }

    func run(_ batch: TaskBatch) throws(Abandoned) -> BatchResult {
        var batch = batch
        var outage = RedisOutage(limit: outageLimit)
        if batch.tasks.isEmpty {
            batch.finishedWithoutTasks(now: .now)
        } else {
            let beganAt = activity.batchBegun()
            defer { activity.batchEnded() }
            let tasks = batch.tasks
            var decisions = try redis(&outage) {
                try metrics.timeRedis {
                    try store.begin(tasks.map(\.message), partitions: tasks.map(\.position.partition), worker: worker, at: beganAt)
                }
            }
            try takeOverAttemptsOver(&decisions, of: tasks, at: beganAt, outage: &outage)
            let runnable = batch.begun(decisions)
            let jobs = runnable.map { task in
                ExecutorPool.Job(
                    type: task.message.type, args: task.message.args,
                    context: TaskContext(id: task.message.id, attempt: task.attempt, maxAttempts: task.message.maxAttempts))
            }
            let attempts = pool.run(jobs)
            var record = batch.ran(attempts.map(\.outcome), now: .now)
            let failed = batch.failedAttempts
            if !failed.isEmpty {
                let requested = try redis(&outage) { try store.cancelRequested(failed) }
                if !requested.isEmpty { record = batch.cancelsRead(requested) }
            }
            count(record, runnable: runnable, attempts: attempts)
            publishDeadLetters(record.deadLetters)
            let finishedAt = activity.batchFinishing()
            let written = try redis(&outage) {
                try metrics.timeRedis {
                    try store.finish(record.outcomes, worker: worker, begunAt: beganAt, at: finishedAt)
                }
            }
            batch.finished(written: written)
        }
        // The statuses first: a marker behind an awaited task is reached once it is terminal.
        let checks = batch.statusChecks
        if !checks.isEmpty { batch.statusesRead(try redis(&outage) { try store.statuses(of: checks) }) }
        for (marker, partitions) in batch.markersReached().sorted(by: { $0.key < $1.key }) {
            try redis(&outage) { try store.recordEndReached(topic: topic, marker: marker, partitions: partitions) }
            logger.info("partitions \(partitions) drained up to the end marker")
        }
        batch.markersRecorded()
        return batch.result
    }

    /// Begins again, taking them over, the tasks `begin` found running under attempts of
    /// other workers that their heartbeats show over (``AttemptElsewhere``); the others stay
    /// running elsewhere. One read of those workers' heartbeats, and one more `begin`.
    private func takeOverAttemptsOver(
        _ decisions: inout [AttemptDecision], of tasks: [BatchTask], at beganAt: Int64, outage: inout RedisOutage
    ) throws(Abandoned) {
        let elsewhere = decisions.enumerated().compactMap { index, decision -> (index: Int, attempt: RunningAttempt)? in
            guard case .runningElsewhere(let attempt) = decision else { return nil }
            return (index, attempt)
        }
        guard !elsewhere.isEmpty else { return }
        let read = try redis(&outage) { try store.heartbeats(of: Set(elsewhere.map(\.attempt.worker))) }
        let now = currentEpochMilliseconds()
        let over = elsewhere.filter {
            !AttemptElsewhere.mayStillRun(
                $0.attempt, heartbeat: read.heartbeats[$0.attempt.worker], now: now, redisNow: read.redisNow)
        }
        if over.count < elsewhere.count {
            logger.info("\(elsewhere.count - over.count) tasks still run on other workers; they are begun again once those end")
        }
        guard !over.isEmpty else { return }
        let taken = over.map { tasks[$0.index] }
        let again = try redis(&outage) {
            try metrics.timeRedis {
                try store.begin(
                    taken.map(\.message), partitions: taken.map(\.position.partition), worker: worker, at: beganAt,
                    attemptsOver: Set(over.map(\.attempt)))
            }
        }
        for (entry, decision) in zip(over, again) { decisions[entry.index] = decision }
    }

    /// Counts each attempt's outcome and time in the worker's metrics, and the tasks that
    /// failed without an attempt (poison messages, attempts used up by dead workers).
    private func count(_ record: TaskBatch.Record, runnable: [BatchTask], attempts: [ExecutorPool.Attempt]) {
        var ended = zip(zip(runnable, attempts), record.attemptKinds).map { ran, kind in
            WorkerMetrics.EndedAttempt(type: ran.0.message.type, outcome: ran.1.outcome, kind: kind, duration: ran.1.duration)
        }
        ended += record.deadLetters.prefix(record.failedWithoutAttempt).map { letter in
            WorkerMetrics.EndedAttempt(type: letter.task.message.type, outcome: nil, kind: .failed, duration: nil)
        }
        metrics.attemptsEnded(ended)
    }

    /// Runs a replay-safe Redis call until it succeeds or the outage rule gives up.
    private func redis<T>(_ outage: inout RedisOutage, _ call: () throws -> T) throws(Abandoned) -> T {
        var report = ProblemReport()
        while true {
            do {
                let value = try call()
                if report.cleared() { logger.notice("Redis answers again") }
                outage.succeeded()
                return value
            } catch {
                let pause: Duration
                // Only the wait for a refusal that has no limit ends early for a stop.
                var stopEndsPause = false
                switch outage.failed(at: .now, refusal: RedisErrorReply(in: error), stopping: shouldStop()) {
                case .giveUp:
                    throw Abandoned(cause: error)
                case .retry(let after):
                    pause = after
                    if report.shouldReport("\(error)", at: .now) {
                        logger.warning("cannot write to Redis: \(error); trying again (giving the partitions up after \(outage.limit))")
                    }
                case .keepWaiting(let after):
                    pause = after
                    stopEndsPause = true
                    if report.shouldReport("\(error)", at: .now) {
                        logger.warning(
                            "Redis refuses the batch's writes: \(error). Every worker meets the same refusal, so this one keeps its partitions and tries again every \(after) until Redis takes the writes (SIGTERM stops the worker)")
                    }
                }
                var left = pause
                while left > .zero && !(stopEndsPause && shouldStop()) {
                    let step = min(left, .milliseconds(100))
                    Thread.sleep(forTimeInterval: step.inSeconds)
                    left -= step
                }
            }
        }
    }

    /// Publishes the dead-letter copies (see ``DeadLetterCopy``). A copy the broker refuses
    /// is logged and dropped: the task is FAILED in Redis all the same, and one bad message
    /// must never stop the worker. A broker that lost its topics (restarted empty, or the
    /// topic deleted) refuses every copy: the worker makes the topic again, as at its start,
    /// and sends the refused copies once more.
    private func publishDeadLetters(_ letters: [TaskBatch.DeadLetter]) {
        guard !letters.isEmpty else { return }
        let now = currentEpochMilliseconds()
        let messages = letters.map { letter in
            let key = Array(letter.task.message.id.utf8.prefix(TaskDeclaration.maximumIDLength))
            return OutgoingMessage(
                partition: 0, key: key,
                value: DeadLetterCopy.value(
                    of: letter.task.message, error: letter.error, attempts: letter.task.attempt, worker: worker,
                    failedAt: now, limit: DeadLetterCopy.valueLimit(keyBytes: key.count, messageLimit: producer.messageLimit)))
        }
        var failures = produceDeadLetters(messages)
        if !failures.isEmpty, madeDeadLetterTopicAgain() {
            let refused = failures.keys.sorted()
            failures = Dictionary(
                uniqueKeysWithValues: produceDeadLetters(refused.map { messages[$0] }).map { (refused[$0.key], $0.value) })
        }
        for (index, reason) in failures.sorted(by: { $0.key < $1.key }) {
            logger.error(
                "task \(letters[index].task.message.id) is FAILED, but its dead-letter copy could not be published to \(deadLetterTopic): \(reason). Its record in Redis keeps the error; check the broker")
        }
    }

    /// Sends `messages` to the dead-letter topic; the reason for each the broker did not take, by index.
    private func produceDeadLetters(_ messages: [OutgoingMessage]) -> [Int: String] {
        do {
            return try producer.produce(topic: deadLetterTopic, messages).mapValues(\.description)
        } catch {
            return Dictionary(uniqueKeysWithValues: messages.indices.map { ($0, "\(error)") })
        }
    }

    /// Whether the dead-letter topic was missing and has been made again.
    private func madeDeadLetterTopicAgain() -> Bool {
        do {
            guard try producer.client.partitionCount(topic: deadLetterTopic) == nil else { return false }
            _ = try producer.client.ensureTopic(deadLetterTopic, partitions: deadLetterPartitions)
            logger.warning("the dead-letter topic \(deadLetterTopic) was missing (a broker that lost its topics?): made it again")
            return true
        } catch {
            logger.error("the dead-letter topic \(deadLetterTopic) could not be read or made again: \(error)")
            return false
        }
    }
}
