// Dropping workers that have been gone for long: their heartbeat and verdict fields.

extension TaskStore {
    /// Deletes the heartbeat and verdict fields of `workers`, in one round trip. A worker
    /// that beats again later simply reappears.
    func forgetWorkers(_ workers: [String]) throws {
        guard !workers.isEmpty else { return }
        let replies = try client.execute([
            RedisCommand(["HDEL", keys.heartbeats] + workers), RedisCommand(["HDEL", keys.verdicts] + workers),
        ])
        if let message = replies.lazy.compactMap(\.errorMessage).first {
            throw YADTQError(
                .redis, "Redis refused to forget workers \(workers.joined(separator: ", "))", libraryMessage: message,
                remedy: "Check that no other program stores different types under this namespace's keys")
        }
    }
}
