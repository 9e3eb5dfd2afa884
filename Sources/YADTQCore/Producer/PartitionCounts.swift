/// Rule: how long a publisher trusts the partition counts it read. A publisher that runs for
/// days (`yadtq-web`, a worker's scheduler) must see partitions added to a topic, and a topic
/// made again with fewer partitions, without a restart: a count older than ``maximumAge`` is
/// read again before the next publish, and a count the broker contradicts (a message refused
/// for an unknown partition) at once.
public struct PartitionCounts: Sendable {
    /// How long a count read from the broker is used before it is read again, by default.
    public static let standardMaximumAge: Duration = .seconds(30)
    /// How long a count read from the broker is used before it is read again.
    public let maximumAge: Duration

    private struct Reading: Sendable {
        var count: Int
        /// When it was read; `nil` once the broker contradicted it.
        var readAt: ContinuousClock.Instant?
    }

    private var readings: [String: Reading] = [:]

    public init(maximumAge: Duration = standardMaximumAge) {
        self.maximumAge = maximumAge
    }

    /// The partition count of `topic` to publish with at `now`, or `nil` when it must be read
    /// from the broker first: never read, read ``maximumAge`` or longer ago, or contradicted.
    public func count(of topic: String, now: ContinuousClock.Instant) -> Int? {
        guard let reading = readings[topic], let readAt = reading.readAt, now - readAt < maximumAge else {
            return nil
        }
        return reading.count
    }

    /// The last count read of `topic`, however old: what the topic is made again with when
    /// the broker lost it.
    public func lastCount(of topic: String) -> Int? {
        readings[topic]?.count
    }

    /// The broker gave `count` partitions for `topic` at `now`.
    public mutating func read(_ count: Int, of topic: String, at now: ContinuousClock.Instant) {
        readings[topic] = Reading(count: count, readAt: now)
    }

    /// The broker refused a message of `topic` for a partition it does not have.
    public mutating func partitionUnknown(in topic: String) {
        readings[topic]?.readAt = nil
    }
}
