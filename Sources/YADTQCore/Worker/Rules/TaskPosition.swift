/// Where a message sits on the task topic.
public struct TaskPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var partition: Int32
    public var offset: Int64

    public init(partition: Int32, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }

    public static func < (lhs: TaskPosition, rhs: TaskPosition) -> Bool {
        (lhs.partition, lhs.offset) < (rhs.partition, rhs.offset)
    }

    public var description: String { "partition \(partition) offset \(offset)" }
}

/// A task of the topic on its way through a worker: the message, where it was read, and
/// (for a poison message) why it cannot run.
public struct BatchTask: Sendable, Hashable {
    public var message: TaskMessage
    public var position: TaskPosition
    /// Why the message is not a runnable task; such a task fails at once (see ``PoisonMessage``).
    public var poison: String?
    /// The attempt Redis granted it in the current batch (0 before it began).
    public var attempt = 0
    /// Where other messages of the same task sit (it was published more than once), when they
    /// came in the same batch: they settle with it (see ``TaskBatch``).
    public var copies: [TaskPosition] = []

    /// Its own position and its copies'.
    public var positions: [TaskPosition] { [position] + copies }

    /// The task with only its positions outside `partitions` (which the worker lost), or
    /// `nil` when none is left.
    public func keeping(allBut partitions: Set<Int32>) -> BatchTask? {
        var kept = positions.filter { !partitions.contains($0.partition) }
        guard !kept.isEmpty else { return nil }
        var task = self
        task.position = kept.removeFirst()
        task.copies = kept
        return task
    }

    public init(message: TaskMessage, position: TaskPosition, poison: String? = nil) {
        self.message = message
        self.position = position
        self.poison = poison
    }
}
