// Dropping workers that have been gone for long: their heartbeat, verdict and plugin list.

extension TaskStore {
    /// Deletes the heartbeat, verdict and plugin-list fields of `workers`, in one round trip,
    /// so names of the past (a fleet whose worker names change with each deploy) do not pile
    /// up, nor do their plugins' schedules show in `yadtq-ctl stats`. A worker that beats
    /// again later reappears, and so does its plugin list (a worker writes it every few seconds).
    func forgetWorkers(_ workers: [String]) throws {
        guard !workers.isEmpty else { return }
        _ = try client.execute(
            [
                RedisCommand(["HDEL", keys.heartbeats] + workers), RedisCommand(["HDEL", keys.verdicts] + workers),
                RedisCommand(["HDEL", keys.plugins] + workers),
            ], or: "Forgetting workers \(workers.joined(separator: ", "))")
    }
}
