import Foundation
import Logging

/// Writes the worker's own entry in `<prefix>all_heartbeats` every interval, from a
/// thread of its own: a worker whose process is frozen (`kill -STOP`) stops beating,
/// and one whose task loop is blocked still beats, with the stuck task and its start
/// time, so the monitor can tell DEAD from STUCK.
///
/// It writes only its own field (`HSET`), never the whole hash, so workers and the
/// monitor never overwrite each other.
public final class HeartbeatPublisher: @unchecked Sendable {
    // @unchecked Sendable: `thread`, `stopRequested` and `loopFinished` are read and
    // written only while holding `condition`; everything else is immutable after init.
    private let condition = NSCondition()
    private var thread: Thread?
    private var stopRequested = false
    private var loopFinished = false
    private let client: RedisClient
    private let key: String
    private let worker: String
    private let activity: WorkerActivity
    private let interval: Duration
    private let timeLimit: Duration
    private let startedAt = currentEpochMilliseconds()
    private let host = ProcessInfo.processInfo.hostName
    private let logger: Logger

    /// - Parameters:
    ///   - interval: how often to beat; the monitor's `--dead-after` should be a few of these.
    ///   - timeLimit: the worker's limit per task, published so the monitor knows when a
    ///     task has overrun it (STUCK).
    public init(
        settings: YADTQSettings, worker: String, activity: WorkerActivity, interval: Duration,
        timeLimit: Duration, logger: Logger
    ) {
        // A heartbeat that cannot be written is skipped, not retried: the next one is due soon.
        client = RedisClient(url: settings.redis, logger: logger, reconnectFor: .zero)
        key = Heartbeat.hashKey(prefix: settings.keyPrefix)
        self.worker = worker
        self.activity = activity
        self.interval = interval
        self.timeLimit = timeLimit
        self.logger = logger
    }

    /// Starts beating, at once and then every interval.
    public func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "yadtq-heartbeat"
        condition.withLock { self.thread = thread }
        thread.start()
    }

    /// Stops beating and writes a last entry (state `stopped` once the worker marked
    /// itself so). Returns after the beating thread has finished, so no beat it had in
    /// flight can land after the last one.
    public func stop() {
        condition.withLock {
            stopRequested = true
            condition.broadcast()
            while thread != nil && !loopFinished { condition.wait() }
        }
        beat()
    }

    private func loop() {
        while true {
            beat()
            let stop = condition.withLock {
                // An absolute deadline: after `kill -CONT` the thread beats at once.
                let deadline = Date(timeIntervalSinceNow: interval.inSeconds)
                while !stopRequested && condition.wait(until: deadline) {}
                return stopRequested
            }
            if stop { break }
        }
        condition.withLock {
            loopFinished = true
            condition.broadcast()
        }
    }

    /// The entry this worker would write now.
    func heartbeat() -> Heartbeat {
        let snapshot = activity.snapshot()
        return Heartbeat(
            lastHeartbeat: currentEpochMilliseconds(), state: snapshot.state, currentTask: snapshot.currentTask,
            taskStartedAt: snapshot.taskStartedAt, processed: snapshot.processed, failed: snapshot.failed,
            partitions: snapshot.partitions, pid: getpid(), host: host, startedAt: startedAt,
            timeLimitMilliseconds: timeLimit.inMilliseconds, intervalMilliseconds: interval.inMilliseconds)
    }

    private func beat() {
        do {
            let reply = try client.execute(RedisCommand("HSET", key, worker, heartbeat().json.jsonString))
            if let message = reply.errorMessage {
                logger.warning("heartbeat not written: Redis answered \(message)")
            }
        } catch {
            logger.warning("heartbeat not written: \(error)")
        }
    }
}
