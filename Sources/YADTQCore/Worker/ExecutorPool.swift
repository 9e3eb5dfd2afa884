import Foundation

/// N threads, each owning one ``PluginExecutor`` (one Lua state), that run a batch
/// of tasks in parallel. Lua states are not thread-safe, so each stays on its thread;
/// the threads are dedicated, so Lua never blocks Swift's cooperative pool.
///
/// - Important: ``close()`` stops the threads (and frees their Lua states); a pool that
///   is not closed keeps them for the life of the process.
public final class ExecutorPool: @unchecked Sendable {
    // @unchecked Sendable: `jobs`, `results`, `next`, `remaining`, `closing` and `alive`
    // are read and written only while holding `condition`; each executor is used
    // only by its own thread.
    public struct Job: Sendable {
        public var type: String
        public var args: [JSONValue]
        public var context: TaskContext

        public init(type: String, args: [JSONValue], context: TaskContext) {
            self.type = type
            self.args = args
            self.context = context
        }
    }

    /// A job's outcome and how long its attempt ran.
    public struct Attempt: Sendable {
        public var outcome: PluginOutcome
        public var duration: Duration
    }

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var results: [Attempt?] = []
    private var next = 0
    private var remaining = 0
    private var closing = false
    /// Threads still serving.
    private var alive = 0
    private var inline: PluginExecutor?
    /// Which task each executor runs now, to stop those whose task is cancelled.
    private let running = RunningAttempts()
    private let onStart: @Sendable (Job) -> Void
    private let onFinish: @Sendable (Job, PluginOutcome) -> Void

    /// - Parameters:
    ///   - onStart: called on the executing thread just before a job runs.
    ///   - onFinish: called on the executing thread as soon as a job has run.
    public init(
        count: Int, makeExecutor: () -> PluginExecutor, onStart: @escaping @Sendable (Job) -> Void = { _ in },
        onFinish: @escaping @Sendable (Job, PluginOutcome) -> Void = { _, _ in }
    ) {
        self.onStart = onStart
        self.onFinish = onFinish
        // One executor runs on the caller's own (dedicated) thread: no hand-off cost.
        inline = count == 1 ? makeExecutor() : nil
        guard count > 1 else { return }
        alive = count
        for slot in 0..<count {
            let handoff = Handoff(executor: makeExecutor())
            let name = "yadtq-executor-\(slot)"
            let thread = Thread { [self] in
                nameCurrentThread(name)
                serve(handoff.executor)
            }
            thread.name = name
            thread.start()
        }
    }

    /// Runs every job and returns their attempts in the same order.
    public func run(_ batch: [Job]) -> [Attempt] {
        if let inline { return batch.map { execute($0, on: inline) } }
        condition.lock()
        precondition(!closing, "the pool is closed")
        jobs = batch
        results = [Attempt?](repeating: nil, count: batch.count)
        next = 0
        remaining = batch.count
        condition.broadcast()
        while remaining > 0 { condition.wait() }
        let attempts = results.map { $0! }
        jobs = []
        condition.unlock()
        return attempts
    }

    private func execute(_ job: Job, on executor: PluginExecutor) -> Attempt {
        running.started(job.context.id, flag: executor.stopFlag)
        onStart(job)
        let start = ContinuousClock.now
        let outcome = executor.execute(type: job.type, args: job.args, context: job.context)
        let duration = ContinuousClock.now - start
        running.finished(flag: executor.stopFlag)
        onFinish(job, outcome)
        return Attempt(outcome: outcome, duration: duration)
    }

    /// The ids of the tasks whose attempts run now.
    public var runningTaskIDs: [String] { running.ids }

    /// Stops the running attempts of these tasks at their sandbox's next check (see
    /// ``TaskStopFlag``): each ends with a cancelled ``PluginFailure``. Safe from any thread;
    /// an attempt that ended meanwhile is left alone, and so is the task its executor runs next.
    /// - Returns: the ids whose attempt was asked to stop.
    @discardableResult
    public func stop(_ ids: Set<String>) -> [String] {
        running.stop(ids)
    }

    /// Stops every thread once the batch in hand (if any) is done; returns when they have
    /// ended. Idempotent.
    public func close() {
        condition.lock()
        closing = true
        inline = nil
        condition.broadcast()
        while alive > 0 { condition.wait() }
        condition.unlock()
    }

    private func serve(_ executor: PluginExecutor) {
        condition.lock()
        defer {
            alive -= 1
            condition.broadcast()
            condition.unlock()
        }
        while true {
            while next >= jobs.count && !closing { condition.wait() }
            if next >= jobs.count { return }
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

    /// The attempts running now, by their executor's stop flag. A flag is lowered when its
    /// executor starts a task and raised only while that task is registered, both under `lock`:
    /// a stop request for a task that has just ended cannot reach the next one.
    private final class RunningAttempts: @unchecked Sendable {
        // @unchecked Sendable: `attempts` is read and written only while holding `lock`.
        private let lock = NSLock()
        private var attempts: [ObjectIdentifier: (id: String, flag: TaskStopFlag)] = [:]

        func started(_ id: String, flag: TaskStopFlag) {
            lock.withLock {
                flag.lower()
                attempts[ObjectIdentifier(flag)] = (id, flag)
            }
        }

        func finished(flag: TaskStopFlag) {
            lock.withLock { attempts[ObjectIdentifier(flag)] = nil }
        }

        var ids: [String] { lock.withLock { attempts.values.map(\.id) } }

        func stop(_ ids: Set<String>) -> [String] {
            lock.withLock {
                attempts.values.filter { ids.contains($0.id) }.map { attempt in
                    attempt.flag.raise()
                    return attempt.id
                }
            }
        }
    }

    /// Moves an executor to the thread that will own it.
    private struct Handoff: @unchecked Sendable {
        // @unchecked Sendable: the creating thread drops its reference right after the
        // hand-off, so the executor is only ever used by the receiving thread.
        let executor: PluginExecutor
    }
}
