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
        public var elapsed: Duration = .zero
        public var done: Int { succeeded + failed }
        /// Terminal tasks per second since waiting began.
        public var rate: Double {
            let seconds = elapsed.inSeconds
            return seconds > 0 ? Double(done) / seconds : 0
        }
    }

    /// Blocks until every task in `ids` is terminal (SUCCESS, FAILED or CANCELLED), calling `onProgress`
    /// after each poll. A task Redis does not know counts as not done yet.
    public func wait(for ids: [String], onProgress: (Progress) -> Void) throws -> Progress {
        let clock = ContinuousClock()
        let start = clock.now
        var progress = Progress(total: ids.count)
        var pending = ids
        while true {
            var stillPending: [String] = []
            for (id, status) in zip(pending, try store.statuses(of: pending)) {
                switch status {
                case .success?: progress.succeeded += 1
                case .failed?, .cancelled?: progress.failed += 1
                default: stillPending.append(id)
                }
            }
            pending = stillPending
            progress.elapsed = clock.now - start
            onProgress(progress)
            if pending.isEmpty { return progress }
            Thread.sleep(forTimeInterval: pollInterval.inSeconds)
        }
    }
}
