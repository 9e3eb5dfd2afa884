/// Rule: what a rebalance changes in a group consumer's assignment, and what the consumer
/// must do about it, in order. ``KafkaConsumer`` performs the actions with librdkafka.
///
/// - Under cooperative rebalancing (YADTQ's `cooperative-sticky`) a rebalance adds or removes
///   only the partitions that move; under an eager protocol (a `partition.assignment.strategy`
///   override) each one replaces the whole assignment.
/// - The listener hears of a revocation before the partitions go, so it can commit what is
///   finished on them, and whether they are lost (the session timed out): then they may be
///   another member's already, and a commit would only be refused.
/// - librdkafka keeps a partition paused across a rebalance: one assigned again while the
///   application had it paused is resumed, since whoever paused it expects a fresh assignment
///   to be consumed (and pauses it again if it must).
/// - A failed rebalance drops the whole assignment, and the listener drops the partitions held
///   as lost, without a commit: this member's generation is no longer the group's.
public struct PartitionAssignment: Sendable, Equatable {
    /// The partitions held now.
    public private(set) var assigned: Set<Int32> = []
    /// The partitions the application paused (see ``KafkaConsumer/pause(_:)``).
    public private(set) var paused: Set<Int32> = []

    public init() {}

    public enum Action: Sendable, Equatable {
        /// Add the partitions of the rebalance to the assignment (`rd_kafka_incremental_assign`).
        case addToAssignment
        /// Make the partitions of the rebalance the whole assignment (`rd_kafka_assign`).
        case replaceAssignment
        /// Take the partitions of the rebalance out of the assignment (`rd_kafka_incremental_unassign`).
        case removeFromAssignment
        /// Drop the whole assignment, which held these partitions (`rd_kafka_assign` with none).
        case dropAssignment(held: [Int32])
        /// Fetch from these partitions again.
        case resume([Int32])
        /// Tell the listener these partitions were assigned.
        case tellAssigned([Int32])
        /// Tell the listener these partitions are about to go.
        case tellRevoked([Int32], lost: Bool)
    }

    /// The group assigned `partitions` (all of them under an eager protocol, the new ones under
    /// a cooperative one).
    public mutating func assign(_ partitions: [Int32], cooperative: Bool) -> [Action] {
        var actions: [Action]
        if cooperative {
            assigned.formUnion(partitions)
            actions = [.addToAssignment]
        } else {
            assigned = Set(partitions)
            actions = [.replaceAssignment]
        }
        let pausedBefore = paused.intersection(partitions)
        if !pausedBefore.isEmpty {
            paused.subtract(pausedBefore)
            actions.append(.resume(pausedBefore.sorted()))
        }
        actions.append(.tellAssigned(partitions.sorted()))
        return actions
    }

    /// The group takes `partitions` away (`lost`: they may be another member's already).
    public mutating func revoke(_ partitions: [Int32], lost: Bool, cooperative: Bool) -> [Action] {
        let told = Action.tellRevoked(partitions.sorted(), lost: lost)
        if cooperative {
            assigned.subtract(partitions)
            return [told, .removeFromAssignment]
        }
        assigned = []
        return [told, .dropAssignment(held: partitions.sorted())]
    }

    /// The rebalance failed: nothing held can be trusted to be this member's any more.
    public mutating func failRebalance() -> [Action] {
        let held = assigned.sorted()
        assigned = []
        return held.isEmpty ? [.dropAssignment(held: [])] : [.dropAssignment(held: held), .tellRevoked(held, lost: true)]
    }

    /// The application paused `partitions`.
    public mutating func pause(_ partitions: [Int32]) { paused.formUnion(partitions) }

    /// The application resumed `partitions`.
    public mutating func resume(_ partitions: [Int32]) { paused.subtract(partitions) }
}
