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

    public init(message: TaskMessage, position: TaskPosition, poison: String? = nil) {
        self.message = message
        self.position = position
        self.poison = poison
    }
}
