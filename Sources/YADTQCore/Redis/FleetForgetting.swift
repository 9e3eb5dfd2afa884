// Dropping workers that have been gone for long: their heartbeat, verdict and plugin list.

extension TaskStore {
    /// Deletes the heartbeat, verdict and plugin-list fields of `workers`, in one round trip,
    /// so names of the past (a fleet whose worker names change with each deploy) do not pile
    /// up, nor do their plugins' schedules show in `yadtq-ctl stats`. A worker that beats
    /// again later reappears, and so does its plugin list (a worker writes it every few seconds).
    func forgetWorkers(_ workers: [String]) throws {
        guard !workers.isEmpty else { return }
        let replies = try client.execute([
            RedisCommand(["HDEL", keys.heartbeats] + workers), RedisCommand(["HDEL", keys.verdicts] + workers),
            RedisCommand(["HDEL", keys.plugins] + workers),
        ])
        if let message = replies.lazy.compactMap(\.errorMessage).first {
            throw YADTQError(
                .redis, "Redis refused to forget workers \(workers.joined(separator: ", "))", libraryMessage: message,
                remedy: "Check that no other program stores different types under this namespace's keys")
        }
    }
}
