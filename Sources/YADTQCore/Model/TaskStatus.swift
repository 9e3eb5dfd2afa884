/// Where a task is in its life: `QUEUED -> PROCESSING -> SUCCESS | FAILED`.
public enum TaskStatus: String, Sendable, CaseIterable, Codable {
    case queued = "QUEUED"
    case processing = "PROCESSING"
    case success = "SUCCESS"
    case failed = "FAILED"

    /// A terminal status is final: YADTQ never overwrites it.
    public var isTerminal: Bool { self == .success || self == .failed }
}
