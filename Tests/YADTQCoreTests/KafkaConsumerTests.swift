import Foundation
import Logging
import Testing
import YADTQCore

@Suite("Kafka consumer: commit answers")
struct CommitAnswerTests {
    @Test("a commit no broker takes reaches the listener as a failure, with its partitions and librdkafka's code")
    func failedCommitReported() throws {
        final class Listener: KafkaRebalanceListener {
            var failures: [([Int32], YADTQError)] = []
            func consumer(_ consumer: KafkaConsumer, didAssign partitions: [Int32]) {}
            func consumer(_ consumer: KafkaConsumer, willRevoke partitions: [Int32], lost: Bool) {}
            func consumer(_ consumer: KafkaConsumer, commitFailed partitions: [Int32], error: YADTQError) {
                failures.append((partitions, error))
            }
        }
        var settings = try YADTQSettings(environment: [:])
        settings.brokers = "127.0.0.1:1"
        let listener = Listener()
        let consumer = try KafkaConsumer(settings: settings, topic: "t", clientID: "commit-test", logger: Logger(label: "test"))
        consumer.listener = listener
        // No broker: no group coordinator, and librdkafka answers the commit, through a later
        // poll, with "waiting for coordinator" once its wait is over (about 6 s here).
        try consumer.commit([0: 5, 1: 7], synchronous: false)
        let start = ContinuousClock.now
        while listener.failures.isEmpty && ContinuousClock.now - start < .seconds(30) {
            _ = consumer.poll(limit: 1, timeout: .milliseconds(100))
        }
        #expect(listener.failures.first?.0 == [0, 1])
        #expect(listener.failures.first?.1.libraryCode != nil)
    }
}
