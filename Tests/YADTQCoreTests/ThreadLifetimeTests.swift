import Foundation
import Logging
import Testing
import YADTQCore

/// The names of this process's live threads (Linux truncates them to 15 bytes).
func liveThreadNames() -> [String] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    return tasks.compactMap { task in
        (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Waits up to two seconds for `condition`.
func eventually(_ condition: () -> Bool) -> Bool {
    for _ in 0..<200 {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}

@Suite("Thread and handle lifetimes", .serialized)
struct ThreadLifetimeTests {
    @Test("an executor pool's threads end when it is closed")
    func executorPoolCloses() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-pool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("return function(args) return args[1] * 2 end".utf8).write(to: folder.appendingPathComponent("double.lua"))
        let registry = PluginRegistry(directory: folder.path)
        let executors = { liveThreadNames().filter { $0.hasPrefix("yadtq-executor") }.count }
        let before = executors()
        let pool = ExecutorPool(count: 3, makeExecutor: { PluginExecutor(registry: registry) })
        #expect(eventually { executors() == before + 3 })
        let outcomes = pool.run(
            (1...4).map { ExecutorPool.Job(type: "double", args: [.int(Int64($0))], context: TaskContext(id: "t\($0)", attempt: 1, maxAttempts: 1)) })
        #expect(outcomes.count == 4)
        pool.close()
        // close() returns once every thread has left its loop; the kernel reaps them a moment later.
        #expect(eventually { executors() == before })
        pool.close()
    }

    @Test("a consumer whose rebalance listener owns it is freed with it")
    func consumerFreed() throws {
        final class Listener: KafkaRebalanceListener {
            var consumer: KafkaConsumer?
            func consumer(_ consumer: KafkaConsumer, didAssign partitions: [Int32]) {}
            func consumer(_ consumer: KafkaConsumer, willRevoke partitions: [Int32], lost: Bool) {
                _ = try? consumer.commit([:], synchronous: true)
            }
            func consumer(_ consumer: KafkaConsumer, commitFailed partitions: [Int32], error: YADTQError) {}
        }
        var settings = try YADTQSettings(environment: [:])
        settings.brokers = "127.0.0.1:1"
        weak var weakConsumer: KafkaConsumer?
        weak var weakListener: Listener?
        do {
            let listener = Listener()
            let consumer = try KafkaConsumer(
                settings: settings, topic: "t", clientID: "lifetime-test", logger: Logger(label: "test"))
            consumer.listener = listener
            listener.consumer = consumer
            weakConsumer = consumer
            weakListener = listener
        }
        #expect(weakListener == nil)
        #expect(weakConsumer == nil)
    }
}
