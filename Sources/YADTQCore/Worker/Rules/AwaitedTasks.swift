/// Rule: a position whose outcome Redis refused is settled only once its task is terminal in
/// Redis. Redis refuses an outcome when the task is already terminal or a later attempt owns
/// it (another copy of its message, begun by another worker or by this one after a rebalance);
/// settling it blindly could commit past a task another worker still runs, should the broker
/// take a commit from a worker that lost the partition. Left unsettled, though, it would hold
/// its partition's commits back for as long as this worker keeps the partition.
///
/// So the worker awaits such tasks: their statuses are read with the next batch (one call for
/// all of them), then every ``interval`` while any is not terminal, and each position whose
/// task is terminal is settled. A task Redis no longer knows counts as terminal: only terminal
/// tasks are deleted (retention, purge). Positions of a partition the worker loses are dropped
/// with it; its next owner reads them again.
public struct AwaitedTasks: Sendable {
    /// How long a task found not terminal waits for its next reading.
    public let interval: Duration
    private var positions: [String: Set<TaskPosition>] = [:]
    /// When the statuses are to be read next; `nil` while nothing is awaited or a reading is
    /// under way.
    public private(set) var nextCheck: ContinuousClock.Instant?

    public init(interval: Duration) {
        self.interval = interval
    }

    /// Whether any position waits for its task.
    public var isEmpty: Bool { positions.isEmpty }

    /// Each task awaited, with the partitions of its positions (what holds end markers back).
    public var partitions: [String: Set<Int32>] { positions.mapValues { Set($0.map(\.partition)) } }

    /// Awaits the task `id` for its `positions`; a task not awaited before is read at once.
    public mutating func await(_ id: String, at positions: some Sequence<TaskPosition>, now: ContinuousClock.Instant) {
        let positions = Set(positions)
        guard !positions.isEmpty else { return }
        if self.positions[id] == nil { nextCheck = now }
        self.positions[id, default: []].formUnion(positions)
    }

    /// The tasks whose statuses to read now (sorted), when a reading is due; the reading is
    /// then under way until ``checked(terminal:now:)``.
    public mutating func takeCheck(now: ContinuousClock.Instant) -> [String] {
        guard let due = nextCheck, due <= now else { return [] }
        nextCheck = nil
        return positions.keys.sorted()
    }

    /// The reading found the tasks `terminal` (or unknown to Redis); returns the positions
    /// settled, sorted.
    public mutating func checked(terminal: Set<String>, now: ContinuousClock.Instant) -> [TaskPosition] {
        var settled: [TaskPosition] = []
        for id in terminal { settled += positions.removeValue(forKey: id) ?? [] }
        if !positions.isEmpty && nextCheck == nil { nextCheck = now + interval }
        return settled.sorted()
    }

    /// Drops the positions of `partitions`, which the worker no longer owns.
    public mutating func forget(partitions: Set<Int32>) {
        for (id, held) in positions {
            let kept = held.filter { !partitions.contains($0.partition) }
            positions[id] = kept.isEmpty ? nil : kept
        }
        if positions.isEmpty { nextCheck = nil }
    }
}
