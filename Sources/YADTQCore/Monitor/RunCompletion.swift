/// Decides when a live monitor is done: the topic's end marker has been drained on
/// every partition and every worker is gone (stopped or DEAD).
///
/// A marker that was already complete at the first snapshot belongs to an earlier
/// run, as it does for workers: the monitor of a new run must not exit on it.
public struct RunCompletion: Sendable {
    private var staleMarker: String?
    private var sawFirstSnapshot = false

    public init() {}

    /// Feeds one snapshot; returns whether the run is over.
    public mutating func isFinished(after snapshot: FleetSnapshot) -> Bool {
        let complete = snapshot.endOfStream.flatMap { $0.isComplete ? $0.marker : nil }
        if !sawFirstSnapshot {
            sawFirstSnapshot = true
            staleMarker = complete
            return false
        }
        guard let complete, complete != staleMarker else { return false }
        return snapshot.everyWorkerGone
    }
}
