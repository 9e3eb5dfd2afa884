/// The copy of a finally failed task that a worker publishes on `<topic>.dlq`: the task
/// message plus `error`, `attempts`, `worker` and `failed_at`.
public enum DeadLetterCopy {
    /// Copies stay below this size, well under librdkafka's default message.max.bytes
    /// (1,000,000) and any broker's, whatever the size of the task's arguments or error.
    public static let maximumBytes = 512 * 1024

    /// The largest value of a copy whose key is `keyBytes` long: ``maximumBytes``, or less when
    /// the producer's `message.max.bytes` is lowered (`YADTQ_KAFKA_MESSAGE_MAX_BYTES`), which
    /// would refuse a larger copy.
    public static func valueLimit(keyBytes: Int, messageLimit: MessageSizeLimit) -> Int {
        min(maximumBytes, messageLimit.maximumBytes - keyBytes - MessageSizeLimit.recordOverhead)
    }

    /// The message value of a dead-letter copy, at most `limit` bytes: a too-long error is
    /// trimmed (see ``ErrorText``) and, if the copy is still too large, the arguments are
    /// replaced by a note (they stay in the task's record in Redis).
    public static func value(
        of message: TaskMessage, error: String, attempts: Int, worker: String, failedAt: Int64,
        limit: Int = maximumBytes
    ) -> [UInt8] {
        var fields: [String: JSONValue] = [
            "id": .string(ErrorText.prefix(message.id, bytes: TaskDeclaration.maximumIDLength)),
            "type": .string(ErrorText.prefix(message.type, bytes: TaskDeclaration.maximumTypeLength)),
            "args": .array(message.args), "max_attempts": .int(Int64(message.maxAttempts)),
            "queued_at": .int(message.queuedAt), "error": .string(ErrorText.trimmed(error, limit: min(ErrorText.maximumBytes, limit / 8))),
            "attempts": .int(Int64(attempts)), "worker": .string(ErrorText.prefix(worker, bytes: 1000)),
            "failed_at": .int(failedAt),
        ]
        let value = JSONValue.object(fields).jsonBytes
        guard value.count > limit else { return value }
        let argsBytes = JSONValue.array(message.args).jsonBytes.count
        fields["args"] = .string("(\(argsBytes) bytes: too large for the dead-letter topic; see the task in Redis)")
        return JSONValue.object(fields).jsonBytes
    }
}
