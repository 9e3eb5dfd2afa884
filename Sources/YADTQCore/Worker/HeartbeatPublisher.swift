import Foundation
import Synchronization
import Logging

/// Writes the worker's own entry in `<prefix>all_heartbeats` every interval, from a
/// thread of its own: a worker whose process is frozen (`kill -STOP`) stops beating,
/// and one whose task loop is blocked still beats, with the stuck task and its start
/// time, so the monitor can tell DEAD from STUCK.
///
/// Each beat also prunes the tasks whose retention has ended, so they go on time even
/// while no task is being written.
public final class HeartbeatPublisher: Sendable {
    private let beating: PeriodicThread
    private let store: TaskStore
    private let worker: String
    private let activity: WorkerActivity
    private let interval: Duration
    private let timeLimit: Duration
    private let startedAt = currentEpochMilliseconds()
    private let host = ProcessInfo.processInfo.hostName
    private let topic: String
    private let group: String
    private let logger: Logger
    /// A heartbeat that cannot be written is reported when that starts and every 5 s after.
    private let problems = Mutex(ProblemReport())

    /// - Parameters:
    ///   - interval: how often to beat; the monitor's `--dead-after` should be a few of these.
    ///   - timeLimit: the worker's limit per task, published so the monitor knows when a
    ///     task has overrun it (STUCK).
    ///   - topic: the topic the worker consumes, so producers and the monitor can check they agree.
    public init(
        settings: YADTQSettings, worker: String, topic: String, activity: WorkerActivity, interval: Duration,
        timeLimit: Duration, logger: Logger
    ) {
        // A heartbeat that cannot be written is skipped, not retried: the next one is due soon.
        store = TaskStore(settings: settings, logger: logger, reconnectFor: .zero)
        self.worker = worker
        self.topic = topic
        group = settings.group
        self.activity = activity
        self.interval = interval
        self.timeLimit = timeLimit
        self.logger = logger
        beating = PeriodicThread(name: "yadtq-heartbeat", interval: interval)
    }

    /// Starts beating, at once and then every interval.
    public func start() {
        beating.start { [self] in beat() }
    }

    /// Stops beating and writes a last entry (state `stopped` once the worker marked
    /// itself so). Returns after the beating thread has finished, so no beat it had in
    /// flight can land after the last one.
    public func stop() {
        beating.stop()
        beat()
    }

    /// The entry this worker would write now.
    func heartbeat() -> Heartbeat {
        let snapshot = activity.snapshot()
        return Heartbeat(
            lastHeartbeat: snapshot.takenAt, state: snapshot.state, currentTask: snapshot.currentTask,
            taskStartedAt: snapshot.taskStartedAt, processed: snapshot.processed, failed: snapshot.failed,
            partitions: snapshot.partitions, pid: getpid(), host: host, startedAt: startedAt,
            timeLimitMilliseconds: timeLimit.inMilliseconds, intervalMilliseconds: interval.inMilliseconds,
            topic: topic, group: group, note: snapshot.note, metricsPort: snapshot.metricsPort,
            batchStartedAt: snapshot.batchStartedAt)
    }

    private func beat() {
        do {
            try store.writeHeartbeat(worker: worker, heartbeat())
            if problems.withLock({ $0.cleared() }) { logger.notice("heartbeats written again") }
        } catch {
            if problems.withLock({ $0.shouldReport("\(error)", at: .now) }) {
                logger.warning("heartbeat not written: \(error)")
            }
            // A Redis that answered may still prune: a full one refuses the heartbeat but lets
            // pruning delete what has expired, which is what gives it room again.
            guard RedisErrorReply(in: error) != nil else { return }
        }
        do {
            try store.prune(at: currentEpochMilliseconds())
        } catch {
            logger.warning("expired tasks not pruned: \(error)")
        }
    }
}
