/// Rule: each verdict change is logged once. A monitor whose verdict write Redis refused
/// (full, say) finds the same change again at its next refresh, since Redis still holds the
/// old verdict; it is not logged again, only a change to another verdict is.
public struct VerdictLog: Sendable, Equatable {
    /// The verdict each worker's last logged change went to.
    private var logged: [String: WorkerVerdict] = [:]

    public init() {}

    /// The changes of one refresh that are still to be logged, now counted as logged.
    public mutating func toLog(_ changes: [VerdictChange]) -> [VerdictChange] {
        changes.filter { change in
            guard logged[change.worker] != change.to else { return false }
            logged[change.worker] = change.to
            return true
        }
    }
}
