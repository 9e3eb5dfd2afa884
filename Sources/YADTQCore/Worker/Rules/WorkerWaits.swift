/// Rule: what a worker that is not consuming waits for, and the one note its heartbeat carries
/// about it (the monitor shows that note as the reason of an ALIVE, `waiting` worker). The broker
/// comes first, as nothing else (the topic included) can be known before it answers; the group
/// last, as the worker joins it only once the topic exists.
public struct WorkerWaits: Sendable, Equatable {
    /// The brokers the worker waits to answer.
    public var broker: String?
    /// The topic the worker waits to exist.
    public var topic: String?
    /// The group the worker joined, until it assigns the worker its share of the partitions.
    public var group: GroupJoinWait?

    public init() {}

    /// The note at `now`, or `nil` when the worker waits for nothing.
    public func note(at now: ContinuousClock.Instant) -> String? {
        if let broker { return Self.brokerNote(broker) }
        if let topic { return "waiting for topic \(topic) to exist (yadtq-run --topic \(topic) creates it)" }
        return group.map { "waiting for group \($0.group) to assign partitions (for \((now - $0.since).compactText))" }
    }

    /// The note while the worker waits for the broker at `brokers`; its log says it too.
    static func brokerNote(_ brokers: String) -> String { "waiting for the broker at \(brokers)" }
}
