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

    public init() {}

    /// A snapshot for one heartbeat.
    public struct Snapshot: Sendable {
        public var state: WorkerState
        public var currentTask: String?
        public var taskStartedAt: Int64?
        public var processed: Int
        public var failed: Int
        public var partitions: [Int32]
    }

    func started(_ id: String, at now: Int64) {
        lock.withLock { running[id] = now }
    }

    func finished(_ id: String) {
        lock.withLock { running[id] = nil }
    }

    /// Counts tasks that reached a terminal status on this worker.
    func count(succeeded: Int, failed: Int) {
        lock.withLock {
            processedCount += succeeded + failed
            failedCount += failed
        }
    }

    func assign(_ partitions: [Int32]) {
        lock.withLock { assigned = partitions }
    }

    func markStopped() {
        lock.withLock { stopped = true }
    }

    public func snapshot() -> Snapshot {
        lock.withLock {
            // The longest-running task is the one that tells whether the worker is stuck.
            let oldest = running.min { $0.value < $1.value }
            return Snapshot(
                state: stopped ? .stopped : (running.isEmpty ? .idle : .busy),
                currentTask: oldest?.key, taskStartedAt: oldest?.value,
                processed: processedCount, failed: failedCount, partitions: assigned)
        }
    }
}
