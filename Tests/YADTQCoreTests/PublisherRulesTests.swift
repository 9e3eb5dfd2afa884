import Testing
import YADTQCore

@Suite("Publisher rules")
struct PublisherRulesTests {
    @Test("a partition count is used for 30 s, then read again; at once when the broker reports an unknown partition")
    func partitionCountsAge() {
        let start = ContinuousClock.now
        var counts = PartitionCounts()
        #expect(counts.count(of: "t", now: start) == nil, "never read")
        counts.read(8, of: "t", at: start)
        #expect(counts.count(of: "t", now: start) == 8)
        #expect(counts.count(of: "t", now: start + .seconds(29)) == 8)
        #expect(counts.count(of: "t", now: start + PartitionCounts.standardMaximumAge) == nil, "old: read again")
        #expect(counts.count(of: "other", now: start) == nil, "each topic on its own")
        counts.read(12, of: "t", at: start + .seconds(31))
        #expect(counts.count(of: "t", now: start + .seconds(32)) == 12, "partitions added are used")
        counts.partitionUnknown(in: "t")
        #expect(counts.count(of: "t", now: start + .seconds(32)) == nil, "contradicted: read again at once")
        #expect(counts.lastCount(of: "t") == 12, "what a lost topic is made again with")
        counts.read(2, of: "t", at: start + .seconds(33))
        #expect(counts.count(of: "t", now: start + .seconds(33)) == 2)
    }

    @Test("a task the broker did not take says why and what to do")
    func notPublishedSaysWhatToDo() {
        let text = TaskPublisher.notPublished(id: "task-7", topic: "tasks", reason: "Local: Message timed out (librdkafka code -192)")
        #expect(text.hasPrefix("could not be published to tasks: Local: Message timed out (librdkafka code -192)"))
        #expect(text.contains("Check the broker"), "\(text)")
        #expect(text.hasSuffix("yadtq-ctl retry task-7"), "\(text)")
    }

    @Test("a dead-letter copy fits a lowered message.max.bytes (YADTQ_KAFKA_MESSAGE_MAX_BYTES)")
    func deadLetterCopyUnderLoweredLimit() {
        let message = TaskMessage(
            id: "wide-1", type: "fail", args: [.string(String(repeating: "A", count: 200_000))], maxAttempts: 3, queuedAt: 1)
        let lowered = MessageSizeLimit(kafkaOverrides: ["message.max.bytes": "100000"])
        let key = Array(message.id.utf8)
        let limit = DeadLetterCopy.valueLimit(keyBytes: key.count, messageLimit: lowered)
        let value = DeadLetterCopy.value(
            of: message, error: String(repeating: "E", count: 50_000), attempts: 3, worker: "w1", failedAt: 2, limit: limit)
        #expect(lowered.refusal(keyBytes: key.count, valueBytes: value.count) == nil, "\(value.count) bytes")
        #expect(
            DeadLetterCopy.valueLimit(keyBytes: key.count, messageLimit: MessageSizeLimit(kafkaOverrides: [:]))
                == DeadLetterCopy.maximumBytes, "the default limit keeps the 512 KiB cap")
    }
}
