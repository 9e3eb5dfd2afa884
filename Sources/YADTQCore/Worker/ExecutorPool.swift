import Foundation

/// N threads, each owning one ``PluginExecutor`` (one Lua state), that run a batch
/// of tasks in parallel. Lua states are not thread-safe, so each stays on its thread;
/// the threads are dedicated, so Lua never blocks Swift's cooperative pool.
final class ExecutorPool: @unchecked Sendable {
    // @unchecked Sendable: `jobs`, `results`, `next`, and `remaining`
    // are read and written only while holding `condition`; each executor is used
    // only by its own thread.
    struct Job: Sendable {
        var type: String
        var args: [JSONValue]
        var context: TaskContext
    }

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var results: [PluginOutcome?] = []
    private var next = 0
    private var remaining = 0
    private let inline: PluginExecutor?
    private let onStart: @Sendable (Job) -> Void
    private let onFinish: @Sendable (Job, PluginOutcome) -> Void

    /// - Parameters:
    ///   - onStart: called on the executing thread just before a job runs.
    ///   - onFinish: called on the executing thread as soon as a job has run.
    init(
        count: Int, makeExecutor: () -> PluginExecutor, onStart: @escaping @Sendable (Job) -> Void,
        onFinish: @escaping @Sendable (Job, PluginOutcome) -> Void
    ) {
        self.onStart = onStart
        self.onFinish = onFinish
        // One executor runs on the caller's own (dedicated) thread: no hand-off cost.
        inline = count == 1 ? makeExecutor() : nil
        guard count > 1 else { return }
        for slot in 0..<count {
            let handoff = Handoff(executor: makeExecutor())
            let thread = Thread { [self] in serve(handoff.executor) }
            thread.name = "yadtq-executor-\(slot)"
            thread.start()
        }
    }

    /// Runs every job and returns their outcomes in the same order.
    func run(_ batch: [Job]) -> [PluginOutcome] {
        if let inline { return batch.map { execute($0, on: inline) } }
        condition.lock()
        jobs = batch
        results = [PluginOutcome?](repeating: nil, count: batch.count)
        next = 0
        remaining = batch.count
        condition.broadcast()
        while remaining > 0 { condition.wait() }
        let outcomes = results.map { $0! }
        jobs = []
        condition.unlock()
        return outcomes
    }

    private func execute(_ job: Job, on executor: PluginExecutor) -> PluginOutcome {
        onStart(job)
        let outcome = executor.execute(type: job.type, args: job.args, context: job.context)
        onFinish(job, outcome)
        return outcome
    }

    private func serve(_ executor: PluginExecutor) {
        condition.lock()
        while true {
            while next >= jobs.count { condition.wait() }
            let index = next
            next += 1
            let job = jobs[index]
            condition.unlock()
            let outcome = execute(job, on: executor)
            condition.lock()
            results[index] = outcome
            remaining -= 1
            if remaining == 0 { condition.broadcast() }
        }
    }

    /// Moves an executor to the thread that will own it.
    private struct Handoff: @unchecked Sendable {
        // @unchecked Sendable: the creating thread drops its reference right after the
        // hand-off, so the executor is only ever used by the receiving thread.
        let executor: PluginExecutor
    }
}
