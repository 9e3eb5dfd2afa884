import Foundation
import YADTQCore

/// Every task's record read back from Redis and checked against the workload:
/// SUCCESS, the expected result, and its queued-to-finished latency.
struct Verification {
    /// Tasks that are not SUCCESS with the expected result.
    private(set) var wrong = 0
    /// The first few of them, described.
    private(set) var examples: [String] = []
    /// Tasks whose record had expired (a retention shorter than the run) before it could be read.
    private(set) var expired = 0
    /// Tasks that needed more than one attempt (correct, but worth knowing).
    private(set) var retried = 0
    /// `finished_at - queued_at` of every correct task, in milliseconds.
    private(set) var latencies: [Int64] = []
    /// The two parts of it: `started_at - queued_at` (the QUEUED write, Kafka, the
    /// worker's poll and its PROCESSING write) and `finished_at - started_at` (the plugin
    /// call and the terminal write).
    private(set) var waits: [Int64] = []
    private(set) var runs: [Int64] = []
    /// The latest `finished_at`: when the last task became terminal.
    private(set) var lastFinishedAt: Int64 = 0

    /// Records read per pipelined round trip: large enough to amortize the round trip,
    /// small enough to keep the reply buffer modest.
    private static let chunk = 2000
    private static let exampleLimit = 10

    /// Reads every task of `ids` (task `i` of `workload` is `ids[i]`) and checks it.
    /// - Parameter expiryExpected: a missing record counts as expired, not wrong (the
    ///   workers keep successes shorter than the run).
    init(ids: [String], workload: Workload, store: TaskStore, expiryExpected: Bool) throws {
        latencies.reserveCapacity(ids.count)
        waits.reserveCapacity(ids.count)
        runs.reserveCapacity(ids.count)
        for start in stride(from: 0, to: ids.count, by: Self.chunk) {
            let range = start..<min(start + Self.chunk, ids.count)
            for (index, record) in zip(range, try store.records(ids: Array(ids[range]))) {
                if record == nil && expiryExpected {
                    expired += 1
                } else {
                    check(record, id: ids[index], expected: workload.expectedResult(index))
                }
            }
        }
    }

    private mutating func check(_ record: TaskRecord?, id: String, expected: JSONValue) {
        guard let record else { return reject("\(id): no record in Redis") }
        guard record.status == .success else {
            return reject("\(id): \(record.status.rawValue) after \(record.attempts) attempts: \(record.error ?? "")")
        }
        guard record.result == expected else {
            return reject("\(id): result \(record.result?.jsonString ?? "none"), expected \(expected.jsonString)")
        }
        guard let queued = record.queuedAt, let started = record.startedAt, let finished = record.finishedAt else {
            return reject("\(id): SUCCESS without queued_at, started_at or finished_at")
        }
        if record.attempts > 1 { retried += 1 }
        latencies.append(finished - queued)
        waits.append(started - queued)
        runs.append(finished - started)
        lastFinishedAt = max(lastFinishedAt, finished)
    }

    private mutating func reject(_ problem: String) {
        wrong += 1
        if examples.count < Self.exampleLimit { examples.append(problem) }
    }
}

/// Nearest-rank percentiles of a set of latencies.
struct Percentiles {
    private let sorted: [Int64]

    init(_ values: [Int64]) { sorted = values.sorted() }

    /// The smallest value at or above `fraction` of the values (0 when there are none).
    func at(_ fraction: Double) -> Int64 {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((Double(sorted.count) * fraction).rounded(.up))
        return sorted[min(Swift.max(rank, 1), sorted.count) - 1]
    }

    var max: Int64 { sorted.last ?? 0 }
}
