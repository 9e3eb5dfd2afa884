import Testing
import YADTQCore

@Suite("Offset watermark")
struct OffsetWatermarkTests {
    @Test("commits only below the lowest unfinished offset when tasks finish out of order")
    func outOfOrderCompletion() {
        var watermark = OffsetWatermark()
        for offset in Int64(10)...14 { watermark.track(partition: 0, offset: offset) }
        watermark.complete(partition: 0, offset: 12)
        watermark.complete(partition: 0, offset: 14)
        #expect(watermark.takeCommittable() == [0: 10])
        watermark.complete(partition: 0, offset: 10)
        #expect(watermark.takeCommittable() == [0: 11])
        watermark.complete(partition: 0, offset: 11)
        #expect(watermark.takeCommittable() == [0: 13])
        watermark.complete(partition: 0, offset: 13)
        #expect(watermark.takeCommittable() == [0: 15])
        #expect(!watermark.hasUnfinished)
    }

    @Test("offsets that go back start the partition again: nothing tracked in the log before is counted")
    func offsetsGoBack() {
        var watermark = OffsetWatermark()
        watermark.track(partition: 0, offset: 100)
        watermark.track(partition: 0, offset: 101)
        watermark.complete(partition: 0, offset: 100)
        #expect(watermark.takeCommittable() == [0: 101])
        // The log was truncated: 5 and 6 are new messages, 101 is of the log before.
        watermark.track(partition: 0, offset: 5)
        watermark.track(partition: 0, offset: 6)
        #expect(watermark.takeCommittable() == [0: 5])
        watermark.complete(partition: 0, offset: 5)
        watermark.complete(partition: 0, offset: 101)
        #expect(watermark.takeCommittable() == [0: 6], "not past 6, which is not finished")
        watermark.complete(partition: 0, offset: 6)
        #expect(watermark.takeCommittable(again: true) == [0: 7])
    }

    @Test("reports a partition only when its watermark moved")
    func onlyMovedPartitions() {
        var watermark = OffsetWatermark()
        watermark.track(partition: 0, offset: 0)
        watermark.track(partition: 1, offset: 7)
        watermark.complete(partition: 1, offset: 7)
        #expect(watermark.takeCommittable() == [0: 0, 1: 8])
        #expect(watermark.takeCommittable().isEmpty)
        watermark.complete(partition: 0, offset: 0)
        #expect(watermark.takeCommittable() == [0: 1])
    }

    @Test("takes the partitions asked for only, and every one again when asked, moved or not")
    func takenAgain() {
        var watermark = OffsetWatermark()
        watermark.track(partition: 0, offset: 4)
        watermark.track(partition: 1, offset: 7)
        watermark.complete(partition: 0, offset: 4)
        watermark.complete(partition: 1, offset: 7)
        #expect(watermark.takeCommittable(only: [1]) == [1: 8])
        #expect(watermark.takeCommittable() == [0: 5], "partition 0 was not taken with partition 1")
        #expect(watermark.takeCommittable().isEmpty)
        #expect(watermark.takeCommittable(again: true) == [0: 5, 1: 8])
    }

    @Test("forgets revoked partitions, unfinished messages included")
    func forgetRevoked() {
        var watermark = OffsetWatermark()
        watermark.track(partition: 3, offset: 5)
        #expect(watermark.hasUnfinished)
        watermark.forget(partitions: [3])
        #expect(!watermark.hasUnfinished)
        #expect(watermark.takeCommittable().isEmpty)
    }
}
