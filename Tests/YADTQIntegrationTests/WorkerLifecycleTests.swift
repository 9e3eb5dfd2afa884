import Foundation
import Testing
import YADTQCore

@Suite("Worker and producer lifecycles", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct WorkerLifecycleTests {
    @Test("a worker whose run throws leaves no heartbeat or plugin-watcher thread behind")
    func cleanupWhenRunThrows() throws {
        let stack = try IntegrationStack(label: "worker-cleanup")
        var settings = stack.settings
        // librdkafka refuses it when the worker makes its producer, after those threads started
        // (an unreachable broker no longer makes run() throw: the worker waits for it).
        settings.kafkaOverrides = ["no.such.property": "1"]
        let worker = Worker(settings: settings, options: WorkerOptions(name: "cleanup", topic: stack.topic), logger: stack.logger)
        #expect(throws: (any Error).self) { try worker.run() }
        func threads() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap {
                try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)
            }
        }
        // run() returns once each thread has left its loop; the kernel reaps it a moment later
        // (on a loaded machine, after this line). A thread left running stays for good.
        let gone = try eventually(.seconds(3)) {
            try !threads().contains { $0.hasPrefix("yadtq-heartbeat") || $0.hasPrefix("yadtq-plugins") }
        }
        let left = try threads()
        #expect(gone, "\(left)")
    }

    @Test("a delivery report that arrives after its batch timed out settles nothing of the next batch")
    func lateDeliveryReports() throws {
        let stack = try IntegrationStack(label: "late-reports")
        #expect(try stack.run(input: "").status == 0, "yadtq-run creates the topic")
        var settings = stack.settings
        settings.kafkaOverrides["message.timeout.ms"] = "1500"
        let producer = try KafkaProducer(settings: settings, clientID: "late-reports")
        let messages = (0..<3).map { OutgoingMessage(partition: 0, key: [], value: Array("m\($0)".utf8)) }
        // A topic that does not exist: not acknowledged within the flush timeout, and the
        // messages' failure reports come when their message timeout passes.
        let first = try producer.produce(topic: stack.topic + "-missing", messages, timeout: .milliseconds(200))
        #expect(first.count == 3)
        Thread.sleep(forTimeInterval: 2.5)
        let second = try producer.produce(topic: stack.topic, messages, timeout: .seconds(20))
        #expect(second.isEmpty, "the earlier batch's late reports were counted against this one: \(second)")
    }

    @Test("a message the broker delivers after its flush timed out (its task marked FAILED) is skipped by the worker: FAILED stays")
    func lateDeliveryOfAFailedTask() throws {
        let stack = try IntegrationStack(label: "late-delivery")
        #expect(try stack.run(input: "", arguments: ["--partitions", "1"]).status == 0, "yadtq-run creates the topic")
        let store = stack.store
        let late = TaskMessage(id: "late-1", type: "add", args: [1, 2], maxAttempts: 3, queuedAt: currentEpochMilliseconds())
        #expect(try store.queue([late], topic: stack.topic) == [.queued])
        let reason = "could not be published to \(stack.topic): not acknowledged by the broker within 60 s"
        try store.failUnpublished([(late.id, reason)], at: currentEpochMilliseconds())
        // The message librdkafka delivered all the same, then a task behind it on the one partition.
        let producer = try KafkaProducer(settings: stack.settings, clientID: "late-delivery")
        let message = OutgoingMessage(partition: 0, key: Array(late.id.utf8), value: late.encoded())
        #expect(try producer.produce(topic: stack.topic, [message]).isEmpty)
        let after = try stack.run(input: #"{"id": "after-late", "type": "add", "args": [2, 2]}"# + "\n")
        #expect(after.status == 0, "\(after.stderr)")
        let worker = try stack.startWorker("wlate")
        defer { WebServerProcess.terminate(worker) }
        let records = try stack.waitForTerminal(["after-late"], timeout: .seconds(60))
        #expect(records[0]?.status == .success, "the worker read past the late message")
        let record = try #require(try stack.records([late.id])[0])
        #expect(record.status == .failed && record.attempts == 0 && record.error == reason, "\(record)")
        #expect(record.errors.count == 1, "no attempt was run: \(record.errors)")
    }
}
