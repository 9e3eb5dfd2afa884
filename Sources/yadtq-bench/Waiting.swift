import Foundation
import YADTQCore

/// The waits around a measurement: for the workers to hold every partition before the
/// clock starts, and for every task to be terminal before it stops.
enum Waiting {
    /// Blocks until `workers` live workers hold all `partitions` partitions between them,
    /// each partition exactly once, for longer than a heartbeat interval: only then is the
    /// group's rebalance over, so the measurement does not include joining the group.
    static func forAssignment(
        workers: Int, partitions: Int, store: TaskStore, stableFor: Duration, timeout: Duration
    ) throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var stableSince: ContinuousClock.Instant?
        var last = "no heartbeat yet"
        while clock.now < deadline {
            let live = try store.workerHeartbeats().compactMap { worker -> [Int32]? in
                guard let heartbeat = worker.heartbeat, heartbeat.state != .stopped else { return nil }
                return heartbeat.partitions
            }
            let held = live.flatMap { $0 }
            let complete = live.count >= workers && held.count == partitions
                && Set(held) == Set((0..<partitions).map { Int32($0) })
            last = "\(live.count) of \(workers) workers hold \(held.count) of \(partitions) partitions"
            if complete {
                let since = stableSince ?? clock.now
                stableSince = since
                if clock.now - since >= stableFor { return }
            } else {
                stableSince = nil
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw BenchFailure("the workers did not take the topic's partitions within \(timeout): \(last)")
    }

    /// Tasks that became terminal (SUCCESS + FAILED) in the namespace, from the finished
    /// counters (which expiring tasks do not lower): one HMGET, so polling it does not load
    /// Redis while it is being measured.
    static func terminalCount(_ store: TaskStore) throws -> Int {
        let counts = try store.finishedCounts()
        return (counts[.success] ?? 0) + (counts[.failed] ?? 0)
    }

    /// Blocks until `total` more tasks than `baseline` are terminal, reporting progress on
    /// standard error every few seconds.
    static func forTerminal(total: Int, baseline: Int, store: TaskStore, timeout: Duration) throws {
        let clock = ContinuousClock()
        let start = clock.now
        var lastReport = start
        while true {
            let done = try terminalCount(store) - baseline
            if done >= total { return }
            let now = clock.now
            if now - start > timeout {
                throw BenchFailure("only \(done) of \(total) tasks were terminal after \(timeout)")
            }
            if now - lastReport >= .seconds(2) {
                lastReport = now
                FileHandle.standardError.write(Data("yadtq-bench: \(done)/\(total) tasks terminal\n".utf8))
            }
            // Fine enough for the status check; the figures come from the tasks' own timestamps.
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}
