/// The slot map a cluster client routes by, and when it must read the map again.
///
/// A redirection (`MOVED`) or a failed call shows that the map is wrong, and the client then
/// drops it; nothing shows that a replica came back or was added. `CLUSTER SLOTS` leaves out
/// a replica that is down or not yet in sync, so a map read meanwhile counts no replica for
/// its master, and the client would stop waiting for one (`WAIT`) for as long as it kept that
/// map. So a map is also read again once it is ``maximumAge`` old: one `CLUSTER SLOTS` per
/// interval, not per call.
public struct SlotMapCache: Sendable {
    public static let maximumAge: Duration = .seconds(10)

    private var map: (topology: ClusterTopology, readAt: ContinuousClock.Instant)?

    public init() {}

    /// The map to route a call by at `now`: `nil` when there is none or it is due to be read again.
    public func current(at now: ContinuousClock.Instant) -> ClusterTopology? {
        guard let map, now - map.readAt < Self.maximumAge else { return nil }
        return map.topology
    }

    /// The map read last, whatever its age: the one the call in progress was routed by.
    public var latest: ClusterTopology? { map?.topology }

    public mutating func store(_ topology: ClusterTopology, readAt: ContinuousClock.Instant) {
        map = (topology, readAt)
    }

    /// Drops the map after a failure: the next call reads it again.
    public mutating func forget() {
        map = nil
    }
}
