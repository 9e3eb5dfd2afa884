/// Rule: a message that is not a runnable task (not JSON, no id, a type that breaks the
/// producer's rules, too deep to read) fails at once, without retries, under its own id
/// when its top-level `"id"` can be read, so such a task never stays QUEUED.
public enum PoisonMessage {
    /// How a poison message is recorded: a task of no type whose one argument is the start
    /// of the message, failing with `reason` on its first and only attempt.
    public static func task(
        for error: TopicMessageError, value: [UInt8], at position: TaskPosition, topic: String, now: Int64
    ) -> BatchTask {
        let id = error.id ?? "poison-\(topic)-\(position.partition)-\(position.offset)"
        let preview = String(decoding: value.prefix(200), as: UTF8.self)
        let message = TaskMessage(id: id, type: "", args: [.string(preview)], maxAttempts: 1, queuedAt: now)
        return BatchTask(message: message, position: position, poison: "undecodable message: \(error.reason)")
    }
}
