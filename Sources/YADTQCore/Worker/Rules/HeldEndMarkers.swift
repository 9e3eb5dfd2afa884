/// An `end` marker read on a partition.
public struct EndMarker: Sendable, Hashable {
    public var marker: String
    public var position: TaskPosition

    public init(marker: String, position: TaskPosition) {
        self.marker = marker
        self.position = position
    }
}

/// Rule: an end marker counts as reached (recorded in Redis, its offset committable) only
/// when no task before it on its partition still waits: for a retry, or for its task to be
/// terminal in Redis (``AwaitedTasks``: another attempt owns it); until then it is held. So
/// the workers of an `end` leave only once every task before the markers is terminal.
public enum HeldEndMarkers {
    /// Splits `markers` into those reached, grouped by marker (partitions sorted), and those
    /// still held behind a task of `waitingPartitions` (a partition where a task waits,
    /// wherever it stands before the marker or after it: the marker waits a little longer
    /// then, never too little).
    public static func split(_ markers: [EndMarker], waitingPartitions: Set<Int32>)
        -> (reached: [String: [Int32]], reachedPositions: [TaskPosition], held: [EndMarker])
    {
        var reached: [String: [Int32]] = [:]
        var positions: [TaskPosition] = []
        var held: [EndMarker] = []
        for marker in markers {
            if waitingPartitions.contains(marker.position.partition) {
                held.append(marker)
            } else {
                reached[marker.marker, default: []].append(marker.position.partition)
                positions.append(marker.position)
            }
        }
        for key in reached.keys { reached[key]?.sort() }
        return (reached, positions, held)
    }
}
