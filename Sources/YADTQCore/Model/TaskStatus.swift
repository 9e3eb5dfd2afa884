/// Where a task is in its life: `[SCHEDULED ->] QUEUED -> PROCESSING -> SUCCESS | FAILED | CANCELLED`.
public enum TaskStatus: String, Sendable, CaseIterable, Codable {
    /// Waiting for its time (`delay`, `at`): the scheduler queues and publishes it when it is due.
    case scheduled = "SCHEDULED"
    case queued = "QUEUED"
    case processing = "PROCESSING"
    case success = "SUCCESS"
    case failed = "FAILED"
    /// Cancelled by an operator: terminal, never retried by a worker.
    case cancelled = "CANCELLED"

    /// A terminal status is final: no worker overwrites it (only an operator's retry
    /// queues a FAILED or CANCELLED task again).
    public var isTerminal: Bool { self == .success || self == .failed || self == .cancelled }
}
