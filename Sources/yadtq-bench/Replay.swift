import Foundation
import YADTQCore

/// The three state changes of every task, straight against Redis through ``TaskStore``
/// (no broker, no workers, no Lua plugin): `queue` in calls of 5,000, as a producer sends
/// them, then `begin` and `finish` in turn per 1,000, as a worker's batches do (from 8
/// partitions in runs of 125, as a consumer's fetches come). One task in a
/// hundred fails its first attempt with a log line and progress, so the slower paths of the
/// scripts are in the mix; it is begun again and succeeds. Each state change's time inside
/// Redis comes from Redis's own statistics (`INFO commandstats`), so nothing else may write
/// to this Redis meanwhile.
struct Replay {
    let workload: Workload
    let store: TaskStore
    let worker = "replay-w1"

    struct Figures {
        var queue = Duration.zero, begin = Duration.zero, finish = Duration.zero
    }

    func run() throws -> Figures {
        let run = UInt32.random(in: 0...UInt32.max)
        let queuedAt = currentEpochMilliseconds()
        let tasks = (0..<workload.count).map { index in
            let (a, b) = workload.operands(index)
            return TaskMessage(
                id: "replay-\(run)-\(index)", type: "add", args: [.int(a), .int(b)], maxAttempts: 3, queuedAt: queuedAt)
        }
        var figures = Figures()
        for batch in stride(from: 0, to: tasks.count, by: 5000).map({ Array(tasks[$0..<min($0 + 5000, tasks.count)]) }) {
            let queued = try timed(&figures.queue) { try store.queue(batch) }
            guard queued.allSatisfy({ $0 == .queued }) else { throw BenchFailure("replay: a task was not queued: \(queued)") }
        }
        let failsFirst: (Int) -> Bool = { $0 % 100 == 7 }
        // Stamped as a worker stamps its calls: a begin and its finish in one millisecond must
        // not read as a replay of each other.
        var clock = CallClock()
        var retried: [Int] = []
        for start in stride(from: 0, to: tasks.count, by: 1000) {
            let indices = Array(start..<min(start + 1000, tasks.count))
            try attempt(indices, attempt: 1, clock: &clock, figures: &figures, failing: failsFirst)
            retried += indices.filter(failsFirst)
        }
        try attempt(retried, attempt: 2, clock: &clock, figures: &figures, failing: { _ in false })
        return figures

        func attempt(_ indices: [Int], attempt: Int, clock: inout CallClock, figures: inout Figures, failing: (Int) -> Bool) throws {
            guard !indices.isEmpty else { return }
            let batch = indices.map { tasks[$0] }
            let begunAt = clock.next(wall: currentEpochMilliseconds())
            let decisions = try timed(&figures.begin) {
                try store.begin(batch, partitions: indices.map { Int32($0 / 125 % 8) }, worker: worker, at: begunAt)
            }
            guard decisions.allSatisfy({ $0 == .run(attempt: attempt) }) else {
                throw BenchFailure("replay: begin did not start attempt \(attempt) of every task")
            }
            let outcomes = indices.map { index in
                let (a, b) = workload.operands(index)
                return failing(index)
                    ? AttemptOutcome(
                        id: tasks[index].id, attempt: attempt, kind: .retry, payload: "boom", logs: ["a line"], progress: 0.5)
                    : AttemptOutcome(id: tasks[index].id, attempt: attempt, kind: .success, payload: String(a + b))
            }
            let finishedAt = clock.next(wall: currentEpochMilliseconds())
            let written = try timed(&figures.finish) { try store.finish(outcomes, worker: worker, begunAt: begunAt, at: finishedAt) }
            guard written.allSatisfy({ $0 }) else { throw BenchFailure("replay: finish did not write every outcome") }
        }
    }

    /// Runs `body`, adding the script time Redis spent meanwhile to `total`.
    private func timed<T>(_ total: inout Duration, _ body: () throws -> T) throws -> T {
        let before = try store.scriptTime()
        let value = try body()
        total += try store.scriptTime() - before
        return value
    }
}
