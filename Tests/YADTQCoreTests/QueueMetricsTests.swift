import Testing
import YADTQCore

/// One scrape's observation: an empty queue, and `lag` as the broker answered (`nil`: it did not).
private func observation(lag: [PartitionLag]?) -> QueueObservation {
    QueueObservation(counts: [:], finished: [:], workers: [:], lag: lag, oldestQueuedSeconds: 0, redisMemory: [])
}

@Suite("Queue metrics: what /metrics serves")
struct QueueMetricsTests {
    @Test("a lag the broker no longer gives leaves no lag series, not the last value read")
    func lagNotReadIsNotServed() {
        let metrics = QueueMetrics()
        let read = metrics.exposition(
            of: observation(lag: [PartitionLag(topic: "t", partition: 0, committed: 0, start: 0, end: 42)]))
        #expect(read.contains(#"yadtq_consumer_lag{topic="t",partition="0"} 42"#), "\(read)")
        let notRead = metrics.exposition(of: observation(lag: nil))
        #expect(!notRead.contains("yadtq_consumer_lag{"), "\(notRead)")
        let readAgain = metrics.exposition(
            of: observation(lag: [PartitionLag(topic: "t", partition: 1, committed: 3, start: 0, end: 5)]))
        #expect(readAgain.contains(#"yadtq_consumer_lag{topic="t",partition="1"} 2"#), "\(readAgain)")
        #expect(!readAgain.contains(#"partition="0""#), "a partition no longer given leaves: \(readAgain)")
    }
}
