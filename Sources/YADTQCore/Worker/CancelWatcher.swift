import Foundation
import Logging

/// Stops the running attempts whose tasks an operator cancels (``CancelWatch``), from a
/// thread of its own: the check is one Redis round trip for all running tasks, never a call
/// per task on the task path, and a slow Redis delays only the cancel, never a task.
final class CancelWatcher: Sendable {
    private let checking: PeriodicThread
    private let store: TaskStore
    private let pool: ExecutorPool
    private let logger: Logger
    /// Owned by the checking thread only (`PeriodicThread` runs one body at a time).
    private let watch = WatchBox()

    init(settings: YADTQSettings, pool: ExecutorPool, logger: Logger) {
        // A check that cannot reach Redis is skipped, not retried: the next one is due soon.
        store = TaskStore(settings: settings, logger: logger, reconnectFor: .zero)
        self.pool = pool
        self.logger = logger
        checking = PeriodicThread(name: "yadtq-cancel", interval: CancelWatch.interval)
    }

    func start() {
        checking.start { [self] in check() }
    }

    /// Returns after the checking thread has ended.
    func stop() {
        checking.stop()
    }

    private func check() {
        let asked = watch.rule.check(running: pool.runningTaskIDs)
        guard !asked.isEmpty else { return }
        let requested: Set<String>
        do {
            requested = try store.cancelRequested(asked)
        } catch {
            logger.debug("cancel requests not checked: \(error)")
            return
        }
        for id in pool.stop(Set(watch.rule.answered(requested, asked: asked))) {
            logger.info("task \(id) was cancelled: stopping its attempt")
        }
    }

    /// The rule's state, kept in a reference so the `Sendable` watcher can hold it.
    private final class WatchBox: @unchecked Sendable {
        // @unchecked Sendable: only the checking thread reads or writes `rule`, and
        // PeriodicThread never runs two bodies at once.
        var rule = CancelWatch()
    }
}
