import Foundation

/// What a worker is doing right now, shared between its task loop and its
/// heartbeat thread.
public final class WorkerActivity: @unchecked Sendable {
    // @unchecked Sendable: every stored property is read and written only while
    // holding `lock`.
    private let lock = NSLock()
    private var running: [String: Int64] = [:]
    private var processedCount = 0
    private var failedCount = 0
    private var assigned: [Int32] = []
    private var stopped = false
    private var waits = WorkerWaits()
    private var assignmentChanges = 0
    private var metricsPort: Int?
    private var batchStartedAt: Int64?
    /// The times of this worker's `begin` and `finish` calls (see ``CallClock``).
    private var callClock = CallClock()

    public init() {}

    /// A snapshot for one heartbeat.
    public struct Snapshot: Sendable {
        /// When it was taken, in milliseconds since the epoch.
        public var takenAt: Int64
        public var state: WorkerState
        public var currentTask: String?
        public var taskStartedAt: Int64?
        public var processed: Int
        public var failed: Int
        public var partitions: [Int32]
        /// Why the worker is not consuming yet, while it waits.
        public var note: String?
        /// How many times the partition assignment changed (joins, leaves, rebalances).
        public var assignmentChanges: Int
        /// The port of the worker's `/metrics`, once it serves one.
        public var metricsPort: Int?
        /// When the batch in hand began, in milliseconds since the epoch.
        public var batchStartedAt: Int64?
    }

    /// Records the port the worker's `/metrics` listens on, for its heartbeat.
    public func serveMetrics(on port: Int) {
        lock.withLock { metricsPort = port }
    }

    /// Marks a batch begun now and returns its start (epoch milliseconds, from the worker's
    /// ``CallClock``), which its attempts carry as `started_at`. Read and recorded under the
    /// lock that snapshots are taken under, so a snapshot taken after that time shows the
    /// batch (see ``AttemptElsewhere``).
    func batchBegun() -> Int64 {
        lock.withLock {
            let now = callClock.next(wall: currentEpochMilliseconds())
            batchStartedAt = now
            return now
        }
    }

    /// The time (epoch milliseconds) to stamp the batch's `finish` call with: later than its
    /// `begin` call's and than every earlier call's of this worker (see ``CallClock``).
    func batchFinishing() -> Int64 {
        lock.withLock { callClock.next(wall: currentEpochMilliseconds()) }
    }

    func batchEnded() {
        lock.withLock { batchStartedAt = nil }
    }

    func started(_ id: String, at now: Int64) {
        lock.withLock { running[id] = now }
    }

    func finished(_ id: String) {
        lock.withLock { running[id] = nil }
    }

    /// Counts tasks that reached a terminal status on this worker.
    func count(succeeded: Int, failed: Int, cancelled: Int = 0) {
        lock.withLock {
            processedCount += succeeded + failed + cancelled
            failedCount += failed
        }
    }

    func assign(_ partitions: [Int32]) {
        lock.withLock {
            if assigned != partitions { assignmentChanges += 1 }
            assigned = partitions
        }
    }

    /// Marks the worker `waiting` for `topic` to exist, or (with `nil`) no longer.
    func waitingForTopic(_ topic: String?) {
        lock.withLock { waits.topic = topic }
    }

    /// Marks the worker `waiting` for the broker at `brokers` to answer, or (with `nil`) no longer.
    func waitingForBroker(_ brokers: String?) {
        lock.withLock { waits.broker = brokers }
    }

    /// Marks the worker `waiting` for `group`, which it joined now, to assign it its share of
    /// the partitions (see ``GroupJoinWait``).
    func joinedGroup(_ group: String) {
        lock.withLock { waits.group = GroupJoinWait(group: group, since: .now) }
    }

    /// The group assigned the worker its share (possibly none): it waits no longer. How long it
    /// waited, when that wait was warned about, else `nil`.
    func groupAssigned() -> Duration? {
        lock.withLock {
            defer { waits.group = nil }
            return waits.group?.assigned(at: .now)
        }
    }

    /// The worker left its group: it waits for nothing from it.
    func leftGroup() {
        lock.withLock { waits.group = nil }
    }

    /// How long the worker has waited for its group, when that is to be warned about now.
    func groupWaitToWarn() -> Duration? {
        lock.withLock { waits.group?.check(at: .now) }
    }

    func markStopped() {
        lock.withLock { stopped = true }
    }

    public func snapshot() -> Snapshot {
        lock.withLock {
            // The longest-running task is the one that tells whether the worker is stuck.
            let oldest = running.min { $0.value < $1.value }
            let now = currentEpochMilliseconds()
            let note = waits.note(at: .now)
            let state: WorkerState = stopped ? .stopped : note != nil ? .waiting : running.isEmpty ? .idle : .busy
            return Snapshot(
                takenAt: now, state: state, currentTask: oldest?.key, taskStartedAt: oldest?.value,
                processed: processedCount, failed: failedCount, partitions: assigned, note: note,
                assignmentChanges: assignmentChanges, metricsPort: metricsPort, batchStartedAt: batchStartedAt)
        }
    }
}
