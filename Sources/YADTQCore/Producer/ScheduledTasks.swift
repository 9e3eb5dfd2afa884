/// The tasks a run scheduled for later that Redis may still hold SCHEDULED, for the run's
/// `end` lines: workers stopped by `end` would leave them waiting for ever.
///
/// A run that never reaches an `end` (a stream, `tail -f | yadtq-run --delay 5m`) would keep
/// every one; so once they have grown to twice what the last look left (and at least
/// `firstLook`), the ones due by now are looked up, and those Redis no longer holds SCHEDULED
/// (released by the scheduler, or cancelled) are forgotten. What is kept then follows the tasks
/// still SCHEDULED, and a task is looked up about once while it waits.
public struct ScheduledTasks: Sendable {
    private var tasks: [(id: String, dueAt: Int64)] = []
    private let firstLook: Int
    /// How many tasks kept make the next look.
    private var nextLook: Int

    public init(firstLook: Int = 10_000) {
        self.firstLook = firstLook
        nextLook = firstLook
    }

    /// How many tasks are kept.
    public var count: Int { tasks.count }
    /// The ids of every task kept: an `end` looks them all up.
    public var ids: [String] { tasks.map(\.id) }
    /// When the last task kept is due (epoch ms).
    public var lastDue: Int64? { tasks.map(\.dueAt).max() }

    public mutating func add(id: String, dueAt: Int64) {
        tasks.append((id, dueAt))
    }

    /// The ids to look up now (and hand to ``looked(up:statuses:)``): once the tasks kept
    /// have grown to the next look, those due by `now` (only they can have been released; maybe
    /// none); `nil` before.
    public func dueForLook(now: Int64) -> [String]? {
        guard tasks.count >= nextLook else { return nil }
        return tasks.filter { $0.dueAt <= now }.map(\.id)
    }

    /// Forgets the tasks among `ids` whose `statuses` are not SCHEDULED (`nil`: deleted, so
    /// ended); the next look comes once the tasks kept have doubled.
    public mutating func looked(up ids: [String], statuses: [TaskStatus?]) {
        let gone = Set(zip(ids, statuses).filter { $0.1 != .scheduled }.map(\.0))
        if !gone.isEmpty { tasks.removeAll { gone.contains($0.id) } }
        nextLook = max(firstLook, 2 * tasks.count)
    }
}
