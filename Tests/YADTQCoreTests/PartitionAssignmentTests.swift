import Testing
import YADTQCore

@Suite("Partition assignment: what a rebalance changes")
struct PartitionAssignmentTests {
    @Test("a cooperative rebalance adds and removes only the partitions that move")
    func cooperative() {
        var assignment = PartitionAssignment()
        #expect(assignment.assign([3, 1], cooperative: true) == [.addToAssignment, .tellAssigned([1, 3])])
        #expect(assignment.assign([5], cooperative: true) == [.addToAssignment, .tellAssigned([5])])
        #expect(assignment.assigned == [1, 3, 5])
        // The listener hears first, so it can commit what is finished before the partition goes.
        #expect(assignment.revoke([3], lost: false, cooperative: true) == [.tellRevoked([3], lost: false), .removeFromAssignment])
        #expect(assignment.assigned == [1, 5])
    }

    @Test("an eager rebalance replaces the whole assignment, and a revocation drops it whole")
    func eager() {
        var assignment = PartitionAssignment()
        _ = assignment.assign([0, 1], cooperative: false)
        #expect(assignment.assign([2], cooperative: false) == [.replaceAssignment, .tellAssigned([2])])
        #expect(assignment.assigned == [2])
        #expect(assignment.revoke([2], lost: true, cooperative: false) == [.tellRevoked([2], lost: true), .dropAssignment(held: [2])])
        #expect(assignment.assigned.isEmpty)
    }

    @Test("a partition paused before it went and assigned again is resumed, the others are not")
    func pausedPartitionAssignedAgain() {
        var assignment = PartitionAssignment()
        _ = assignment.assign([0, 1, 2], cooperative: true)
        assignment.pause([1, 2])
        _ = assignment.revoke([1, 2], lost: false, cooperative: true)
        #expect(assignment.assign([1], cooperative: true) == [.addToAssignment, .resume([1]), .tellAssigned([1])])
        #expect(assignment.paused == [2])
        // One the application resumed itself needs nothing more.
        assignment.resume([2])
        #expect(assignment.assign([2], cooperative: true) == [.addToAssignment, .tellAssigned([2])])
    }

    @Test("a failed rebalance drops every partition held, and the listener drops them as lost")
    func failedRebalance() {
        var assignment = PartitionAssignment()
        _ = assignment.assign([4, 0], cooperative: true)
        #expect(assignment.failRebalance() == [.dropAssignment(held: [0, 4]), .tellRevoked([0, 4], lost: true)])
        #expect(assignment.assigned.isEmpty)
        // Holding nothing, there is nothing to tell.
        #expect(assignment.failRebalance() == [.dropAssignment(held: [])])
    }
}
