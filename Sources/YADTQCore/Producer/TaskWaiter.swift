import Foundation

/// Follows a set of tasks until every one is terminal, reading their statuses in
/// pipelined batches.
public struct TaskWaiter: Sendable {
    private let store: TaskStore
    private let pollInterval: Duration

    public init(store: TaskStore, pollInterval: Duration = .milliseconds(200)) {
        self.store = store
        self.pollInterval = pollInterval
    }

    public struct Progress: Sendable {
        public var total: Int
        public var succeeded = 0
        public var failed = 0
        /// Tasks whose record was gone when read: ended and pruned (their retention over) or
        /// purged before waiting saw how they ended.
        public var pruned = 0
        public var elapsed: Duration = .zero
        public var done: Int { succeeded + failed + pruned }
        /// Whether every task is known to have succeeded: not when one failed, nor when one's
        /// outcome is no longer known.
        public var allSucceeded: Bool { succeeded == total }
        /// Terminal tasks per second since waiting began.
        public var rate: Double {
            let seconds = elapsed.inSeconds
            return seconds > 0 ? Double(done) / seconds : 0
        }

        public init(total: Int) {
            self.total = total
        }

        /// Counts the tasks whose status is read as `statuses` (`nil`: Redis does not know the
        /// id) that have ended.
        ///
        /// Every task waited for had its record in Redis when it was handed over (a producer
        /// writes a task's record before its message, and a duplicate id is answered from the
        /// record there), and a record is deleted only once its task is terminal (pruning at
        /// the end of its retention, `yadtq-ctl purge`). So an unknown id is a task that ended
        /// and was deleted: waiting for it again would never end.
        /// - Returns: for each status, whether its task is still to be read again.
        public mutating func count(_ statuses: [TaskStatus?]) -> [Bool] {
            statuses.map { status in
                switch status {
                case .success?: succeeded += 1
                case .failed?, .cancelled?: failed += 1
                case nil: pruned += 1
                case .scheduled?, .queued?, .processing?: return true
                }
                return false
            }
        }

        /// The closing line: how many tasks ended how, and how long waiting took.
        public var summary: String {
            let ended = String(format: "%d tasks: %d succeeded, %d failed", total, succeeded, failed)
            let took = String(format: " in %.2f s", elapsed.inSeconds)
            guard pruned > 0 else { return ended + took }
            return ended + ", \(pruned) pruned before they were read" + took + "\n"
                + "\(pruned) task(s) ended and their records were deleted (retention over) before yadtq-run read "
                + "them: whether they succeeded is no longer known. Run the workers with a longer --keep-succeeded "
                + "and --keep-failed to keep tasks readable until they are waited for."
        }
    }

    /// Blocks until every task in `ids` is terminal (SUCCESS, FAILED or CANCELLED) or gone
    /// (see ``Progress/count(_:)``), calling `onProgress` after each poll.
    public func wait(for ids: [String], onProgress: (Progress) -> Void) throws -> Progress {
        let clock = ContinuousClock()
        let start = clock.now
        var progress = Progress(total: ids.count)
        var pending = ids
        while true {
            let running = progress.count(try store.statuses(of: pending))
            pending = zip(pending, running).filter(\.1).map(\.0)
            progress.elapsed = clock.now - start
            onProgress(progress)
            if pending.isEmpty { return progress }
            Thread.sleep(forTimeInterval: pollInterval.inSeconds)
        }
    }
}
