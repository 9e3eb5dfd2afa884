/// Rule: the first SIGTERM/SIGINT asks the worker to stop cleanly (finish the batch in hand
/// and the retries, commit, leave the group), which can take a while; a second one ends it at
/// once, as `kill -9` would: the other workers redeliver what it had in hand.
public struct StopSignals: Sendable, Equatable {
    public enum Response: Sendable, Equatable {
        case stopCleanly
        case exitNow
    }

    private var count = 0

    public init() {}

    /// What to do about the signal just received.
    public mutating func received() -> Response {
        count += 1
        return count == 1 ? .stopCleanly : .exitNow
    }
}
