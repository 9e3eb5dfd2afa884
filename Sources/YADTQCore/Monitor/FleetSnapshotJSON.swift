extension FleetSnapshot {
    /// The machine-readable snapshot `yadtq-monitor --json` prints, one per line.
    ///
    /// Each worker object holds its heartbeat exactly as stored in Redis, plus the
    /// monitor's `name`, `verdict`, `reason`, `heartbeat_age_ms` and `task_running_ms`.
    public var json: JSONValue {
        var queue = [String: JSONValue](uniqueKeysWithValues: TaskStatus.allCases.map { status in
            (status.rawValue, JSONValue.int(Int64(counts[status] ?? 0)))
        })
        queue["total"] = .int(Int64(totalTasks))
        return [
            "at": .int(at),
            "namespace": .string(namespace),
            "topic": .string(topic),
            "workers": .array(workers.map { worker in
                var fields = worker.json(at: at)
                fields["lag"] = lag(of: worker).map(JSONValue.int) ?? .null
                return .object(fields)
            }),
            "lag": lag.map { lag in
                [
                    "total": .int(totalLag ?? 0),
                    "partitions": .array(lag.map { ["partition": .int(Int64($0.partition)), "committed": $0.committed.map(JSONValue.int) ?? .null, "end": .int($0.end), "lag": .int($0.lag)] }),
                ]
            } ?? .null,
            "problems": .array(problems.map(JSONValue.string)),
            "queue": .object(queue),
            "tasks_per_second": .double(tasksPerSecond),
            "rate_window_s": .int(Int64(rateWindowSeconds)),
            "orphaned": .array(orphaned.map { ["id": .string($0.id), "worker": .string($0.worker)] }),
            "orphaned_count": .int(Int64(orphanCount)),
            "orphan_scan_limit": .int(Int64(orphanScanLimit)),
            "end_of_stream": endOfStream.map { end in
                [
                    "marker": .string(end.marker), "published_at": .int(end.publishedAt),
                    "partitions": .int(Int64(end.partitions)), "reached": .int(Int64(end.reached)),
                    "complete": .bool(end.isComplete),
                ]
            } ?? .null,
            "changes": .array(changes.map(\.json)),
        ]
    }
}

extension WorkerReport {
    /// How long ago the worker last beat, as of the snapshot's `now` (on the worker's clock
    /// when the monitor knows it: ``clock``).
    public func heartbeatAge(at now: Int64) -> Duration { .milliseconds(max(0, (clock ?? now) - heartbeat.lastHeartbeat)) }

    /// How long the current task has run as of the snapshot's `now` (as for
    /// ``heartbeatAge(at:)``); `nil` when the worker is not busy or is DEAD (a dead worker's
    /// task is not running, it is orphaned).
    public func taskRunningTime(at now: Int64) -> Duration? {
        guard verdict != .dead, heartbeat.state == .busy, let startedAt = heartbeat.taskStartedAt else { return nil }
        return .milliseconds(max(0, (clock ?? now) - startedAt))
    }

    func json(at now: Int64) -> [String: JSONValue] {
        guard case .object(var fields) = heartbeat.json else { preconditionFailure("a heartbeat is an object") }
        fields["name"] = .string(name)
        fields["verdict"] = .string(verdict.rawValue)
        fields["reason"] = .string(judgement.reason)
        fields["heartbeat_age_ms"] = .int(heartbeatAge(at: now).inMilliseconds)
        fields["task_running_ms"] = taskRunningTime(at: now).map { .int($0.inMilliseconds) } ?? .null
        return fields
    }
}

extension VerdictChange: CustomStringConvertible {
    /// The change log line: `2025-06-01T12:00:05.123Z w1 ALIVE -> DEAD: no heartbeat for 12s (dead after 10s)`.
    public var description: String {
        let reason = self.reason.isEmpty ? "" : ": " + self.reason
        return "\(timestampText(epochMilliseconds: at)) \(worker) \(from?.rawValue ?? "new") -> \(to.rawValue)\(reason)"
    }

    var json: JSONValue {
        [
            "worker": .string(worker), "from": from.map { .string($0.rawValue) } ?? .null,
            "to": .string(to.rawValue), "reason": .string(reason), "at": .int(at),
        ]
    }
}
