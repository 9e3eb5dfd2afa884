/// Decides when a live monitor is done: the topic's end marker has been drained on
/// every partition and every worker is gone (stopped or DEAD).
///
/// A marker that was already drained at the first snapshot belongs to an earlier
/// run, as it does for workers: the monitor of a new run must not exit on it.
public struct RunCompletion: Sendable {
    private var staleMarker: String?
    private var sawFirstSnapshot = false

    public init() {}

    /// Feeds one snapshot; returns whether the run is over.
    public mutating func isFinished(after snapshot: FleetSnapshot) -> Bool {
        isFinished(
            drainedMarker: snapshot.endOfStream.flatMap { $0.isComplete ? $0.marker : nil },
            everyWorkerGone: snapshot.everyWorkerGone)
    }

    /// - Parameter drainedMarker: the topic's latest end marker when every partition
    ///   has drained up to it, else `nil`.
    public mutating func isFinished(drainedMarker: String?, everyWorkerGone: Bool) -> Bool {
        if !sawFirstSnapshot {
            sawFirstSnapshot = true
            staleMarker = drainedMarker
            return false
        }
        guard let drainedMarker, drainedMarker != staleMarker else { return false }
        return everyWorkerGone
    }
}
