import Foundation
import Testing
import YADTQCore

// yadtq-run publishes batch N+1's QUEUED writes and Kafka messages while it reads and
// prepares batch N+2: these check that the pipelining keeps input order, reports every
// task, and still answers a streamed line at once.
@Suite("Producer", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct ProducerTests {
    @Test("12,001 lines over three batches: ids printed in input order, each QUEUED once, a repeat reported")
    func manyBatchesInOrder() throws {
        let stack = try IntegrationStack(label: "producer-order")
        let count = 12_001
        var lines = (0..<count).map { #"{"id": "order-\#($0)", "type": "add", "args": [\#($0), 1]}"# }
        // A repeat of an id from the first batch, in the third: not published again.
        lines.append(#"{"id": "order-7", "type": "add", "args": [0, 0]}"#)
        let run = try stack.run(input: lines.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "yadtq-run: \(run.stderr.suffix(500))")
        let printed = run.stdout.split(separator: "\n").map(String.init)
        let expected = (0..<count).map { "order-\($0)" } + ["order-7 (already exists, not published again)"]
        #expect(printed == expected, "ids in input order, the repeat last (\(printed.count) printed)")
        let ids = (0..<count).map { "order-\($0)" }
        let records = try stack.records(ids)
        #expect(records.allSatisfy { $0?.status == .queued }, "every task QUEUED")
        #expect(records[7]?.args == .array([.int(7), .int(1)]), "the first declaration of a repeated id wins")
        #expect(records[count - 1]?.args == .array([.int(Int64(count - 1)), .int(1)]))
        let counts = try stack.store.counts()
        #expect(counts[.queued] == count)
    }

    @Test("a UTF-8 byte order mark at the start of standard input or a file is dropped: the first task goes through")
    func byteOrderMark() throws {
        let stack = try IntegrationStack(label: "producer-bom")
        func lines(_ first: Int) -> [UInt8] {
            [0xEF, 0xBB, 0xBF] + Array((first...first + 1).map { #"{"id": "bom-\#($0)", "type": "add", "args": [1, 2]}"# + "\n" }.joined().utf8)
        }
        let piped = try stack.run(input: lines(1))
        #expect(piped.status == 0, "yadtq-run: \(piped.stderr.suffix(500))")
        #expect(piped.stdout.split(separator: "\n") == ["bom-1", "bom-2"])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-bom-\(UUID().uuidString).txt")
        try Data(lines(3)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let read = try stack.run(input: [], arguments: [file.path])
        #expect(read.status == 0, "yadtq-run: \(read.stderr.suffix(500))")
        #expect(read.stdout.split(separator: "\n") == ["bom-3", "bom-4"])
    }

    @Test("a task type no running worker of the topic has a plugin for is told once, and its tasks are still published")
    func typeNoWorkerRuns() throws {
        let stack = try IntegrationStack(label: "producer-types")
        let worker = try stack.startWorker("wtypes")
        defer { WebServerProcess.terminate(worker) }
        let deadline = ContinuousClock.now + .seconds(30)
        while try stack.store.publishedPlugins()["wtypes"] == nil || stack.store.workerHeartbeats().first(where: { $0.name == "wtypes" }) == nil {
            guard ContinuousClock.now < deadline else { throw WebTestError("the worker never published its plugins") }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let run = try stack.run(input: "add 1 2\nad 1 2\nad 3 4\n{\"type\": \"mul\", \"args\": [2, 3]}\n")
        #expect(run.status == 0, "the warning is advice: \(run.stderr)")
        #expect(run.stdout.split(separator: "\n").count == 4, "every task published: \(run.stdout)")
        let told = run.stderr.split(separator: "\n").filter { $0.contains("has no plugin on the running workers") }
        #expect(told.count == 1, "once per type: \(run.stderr)")
        #expect(told.first?.contains("task type 'ad' has no plugin on the running workers of topic \(stack.topic) (wtypes)") == true, "\(run.stderr)")
        #expect(told.first?.contains("unless ad.lua is added to their plugin folder") == true)
    }

    @Test("the first type warning judges by the heartbeats read to choose the topic, not by a second reading")
    func typeWarningsUseTheHeartbeatsReadAtStart() throws {
        let stack = try IntegrationStack(label: "producer-beats")
        let store = stack.store
        // The worker's plugin list is in Redis, its heartbeat only in the caller's reading.
        try store.publishPlugins([PluginInfo(type: "add", file: "add.lua")], worker: "wgiven")
        let beat: JSONValue = .object([
            "topic": .string(stack.topic), "group": .string(stack.settings.group), "state": .string("idle"),
            "last_heartbeat": .int(currentEpochMilliseconds()),
        ])
        let given = TypeWarnings(
            store: store, topic: stack.topic, group: stack.settings.group,
            heartbeats: [TaskStore.WorkerHeartbeat(name: "wgiven", document: beat)])
        let told = given.warnings(for: ["add", "ad"])
        #expect(told.count == 1 && told[0].contains("task type 'ad' has no plugin on the running workers of topic \(stack.topic) (wgiven)"), "\(told)")
        // Without them the fleet is read from Redis, where no worker runs: nothing is known.
        let read = TypeWarnings(store: store, topic: stack.topic, group: stack.settings.group)
        #expect(read.warnings(for: ["add", "ad"]).isEmpty)
    }

    @Test("a line streamed through a pipe is published and its id printed before the next line arrives")
    func streamedLineAnsweredAtOnce() throws {
        let stack = try IntegrationStack(label: "producer-stream")
        let run = try StreamedRun(stack)
        for index in 1...3 {
            let id = "streamed-\(index)"
            run.send([id])
            let line = run.reader.nextLine(timeout: .seconds(20))
            #expect(line == id, "line \(index) answered while the pipe stays open")
            #expect(try stack.store.statuses(of: [id]) == [.queued])
        }
        #expect(try run.end() == 0)
    }

    @Test("a topic Kafka would refuse (or whose .dlq it would) is refused before anything is queued, saying what is allowed")
    func invalidTopic() throws {
        let stack = try IntegrationStack(label: "producer-topic")
        let long = String(repeating: "t", count: 246)
        for (topic, says) in [("my tasks", "has ' ' in it"), (long, "is 246 characters long")] {
            let run = try stack.runCommand("yadtq-run", arguments: ["--topic", topic], input: Array("add 1 2\n".utf8))
            #expect(run.status != 0, "\(run.stdout)")
            #expect(run.stderr.contains("--topic: the topic"), "\(run.stderr)")
            #expect(run.stderr.contains(says), "\(run.stderr)")
            #expect(run.stderr.contains("1 to 245 ASCII letters, digits, '.', '_' and '-'"), "\(run.stderr)")
            #expect(run.stdout.isEmpty)
        }
        #expect(try stack.store.counts()[.queued] == 0)
    }

    @Test("one-task runs do not all go to one partition: each run's round-robin starts at a random place")
    func roundRobinStartsAnywhere() throws {
        let stack = try IntegrationStack(label: "producer-spread")
        #expect(try stack.run(input: "", arguments: ["--partitions", "8"]).status == 0)
        for index in 0..<12 {
            let run = try stack.run(input: "add \(index) 1\n")
            #expect(run.status == 0, "\(run.stderr)")
        }
        let partitions = try stack.messagePartitions(stack.topic, expecting: 12)
        #expect(partitions.count == 12)
        // Twelve runs all on one partition of eight by chance: about one in ten billion.
        #expect(Set(partitions).count > 1, "every run began at the same partition: \(partitions)")
    }

    @Test("standard output closed by its reader (`| head -1`): every task of every batch is still queued and published, and that is said once")
    func closedStandardOutput() throws {
        let stack = try IntegrationStack(label: "producer-sigpipe")
        // Two batches: the first one's ids are written to the closed pipe before the second is published.
        let count = 6001
        let ids = (0..<count).map { "pipe-\($0)" }
        let lines = ids.map { #"{"id": "\#($0)", "type": "add", "args": [1, 1]}"# + "\n" }.joined()
        let run = try stack.run(input: Array(lines.utf8), closedOutput: true)
        #expect(run.reason == .exit, "yadtq-run was killed by signal \(run.status)")
        #expect(run.status == 0, "yadtq-run: \(run.stderr.suffix(500))")
        let told = run.stderr.split(separator: "\n").filter { $0.contains("standard output is closed") }
        #expect(told.count == 1, "\(run.stderr.suffix(500))")
        #expect(
            told.first == "standard output is closed: task ids are no longer printed; every task is still published (Broken pipe)",
            "the system's reason, not Foundation's error: \(run.stderr.suffix(500))")
        #expect(try stack.store.statuses(of: ids).allSatisfy { $0 == .queued }, "every task QUEUED")
        let published = try stack.readTopic(stack.topic, expecting: count + 1, timeout: .seconds(15))
        #expect(Set(try published.map { try JSONValue(parsing: $0)["id"]?.stringValue ?? "" }) == Set(ids))
        #expect(published.count == count, "each task published once")
    }

    @Test("a batch Redis refuses (full) stops the run there: its tasks are written with their ids to publish again, and the error says where to go on")
    func refusedBatchStopsTheRun() throws {
        let stack = try IntegrationStack(label: "producer-full")
        let run = try StreamedRun(stack)
        #expect(try run.publishThenFillRedis(["full-1", "full-2"], then: StreamedRun.taskLines(["full-3"]), stack: stack) == 1)
        let stderr = try String(contentsOf: run.errorLog, encoding: .utf8)
        #expect(stderr.contains("Redis is full"), "\(stderr)")
        #expect(stderr.contains("nothing from line 4 of standard input on was published"), "\(stderr)")
        #expect(stderr.contains("may have been queued all the same, or not"), "\(stderr)")
        #expect(stderr.contains("Before that batch, 2 tasks were published"), "\(stderr)")
        #expect(stderr.contains("then the rest: the input from line 4 on"), "\(stderr)")
        #expect(run.reader.nextLine(timeout: .seconds(1)) == nil, "no id printed for the refused batch")
        #expect(try stack.store.statuses(of: ["full-1", "full-2", "full-3"]) == [.queued, .queued, nil])
        // One more than expected, so that a refused task published anyway would show.
        let published = try stack.readTopic(stack.topic, expecting: 3, timeout: .seconds(12))
        #expect(try published.map { try JSONValue(parsing: $0)["id"]?.stringValue ?? "" }.sorted() == ["full-1", "full-2"], "\(published)")

        // The batch's tasks, with their ids, in a file in the run's folder that yadtq-run reads back.
        let named = try #require(stderr.firstMatch(of: /`yadtq-run (\.\/yadtq-run-unresolved-[0-9]+\.txt)`/)?.1, "\(stderr)")
        let file = run.folder.appendingPathComponent(String(named))
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        #expect(try lines.map { try JSONValue(parsing: String($0))["id"] } == ["full-3"])
        let again = try stack.run(input: [], arguments: [file.path])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout == "full-3\n")
        #expect(try stack.run(input: [], arguments: [file.path]).stdout.contains("full-3 (already exists, not published again)"))
        #expect(try stack.store.statuses(of: ["full-3"]) == [.queued])
    }
}

extension ProducerTests {
    @Test("a long-running publisher reads its topic's partition count again once it is 30 s old: a topic made again with fewer partitions gets no task on a partition gone")
    func topicMadeAgainWithFewerPartitions() throws {
        let stack = try IntegrationStack(label: "producer-shrink")
        let publisher = try TaskPublisher(
            settings: stack.settings, topic: stack.topic, partitions: 4, clientID: "producer-shrink", logger: stack.logger,
            partitionCountsAge: .seconds(2))
        let tasks = (0..<4).map { TaskDeclaration(type: "add", args: [.int(Int64($0)), 1]) }
        let first = try publisher.publish(tasks)
        let partitions = first.compactMap { task -> Int32? in
            guard case .published(let partition) = task.outcome else { return nil }
            return partition
        }
        #expect(Set(partitions).count == 4, "one task per partition: \(first.map(\.outcome))")
        try stack.remakeTopic(stack.topic, partitions: 1)
        // This broker takes a message for a partition its topic does not have (where no worker
        // reads it), so only the count read again keeps the tasks on partitions that exist.
        Thread.sleep(forTimeInterval: 2.5)
        let second = try publisher.publish(tasks)
        #expect(second.map(\.outcome) == Array(repeating: .published(partition: 0), count: 4))
        #expect(try stack.store.statuses(of: second.map(\.message.id)) == Array(repeating: .queued, count: 4))
    }

    @Test("an end marker librdkafka refuses for a partition the topic lost is published over the partitions it has, and recorded with their count")
    func endAfterTopicMadeAgainWithFewerPartitions() throws {
        let stack = try IntegrationStack(label: "producer-end-shrink")
        var settings = stack.settings
        // librdkafka reads the topic's metadata again soon, and so refuses messages for the
        // partitions it lost, while the publisher still trusts the count it read (30 s).
        settings.kafkaOverrides["topic.metadata.refresh.interval.ms"] = "200"
        let publisher = try TaskPublisher(
            settings: settings, topic: stack.topic, partitions: 4, clientID: "producer-end-shrink", logger: stack.logger)
        #expect(try publisher.partitions == 4)
        try stack.remakeTopic(stack.topic, partitions: 1)
        Thread.sleep(forTimeInterval: 2)
        let marker = try publisher.publishEnd()
        let end = try #require(try stack.store.endOfStream(topic: stack.topic))
        #expect(end.marker == marker && end.partitions == 1, "\(end)")
        #expect(try stack.readTopic(stack.topic, expecting: 1).first?.contains(marker) == true)
    }

    @Test("an `end` whose marker cannot be published stops the run saying the tasks before it are published and how to publish the marker again")
    func endNotPublished() throws {
        let stack = try IntegrationStack(label: "producer-end")
        let run = try StreamedRun(stack)
        // The marker's record in Redis is refused.
        #expect(try run.publishThenFillRedis(["end-1", "end-2"], then: "end\n", stack: stack) == 1)
        let stderr = try String(contentsOf: run.errorLog, encoding: .utf8)
        #expect(stderr.contains("Redis is full"), "\(stderr)")
        #expect(stderr.contains("The run stopped at the `end` of line 3 of standard input: every task before it is published (2 tasks"), "\(stderr)")
        #expect(stderr.contains("publish the end marker again: `echo end | yadtq-run --topic \(stack.topic)`"), "\(stderr)")
        #expect(try stack.store.statuses(of: ["end-1", "end-2"]) == [.queued, .queued])
        let again = try stack.runCommand("yadtq-run", arguments: ["--topic", stack.topic], input: Array("end\n".utf8))
        #expect(again.status == 0, "the command the error gives publishes the marker: \(again.stderr)")
        #expect(try stack.store.endOfStream(topic: stack.topic) != nil)
    }
}

extension ProducerTests {
    @Test("--wait: a task whose record is pruned before waiting reads it counts as ended, outcome unknown, and the run exits 1 saying so")
    func waitForPrunedTask() throws {
        let stack = try IntegrationStack(label: "producer-pruned")
        let run = try StreamedRun(stack, arguments: ["--wait", "--results"])
        run.send(["pruned-1"])
        #expect(run.reader.nextLine(timeout: .seconds(20)) == "pruned-1")
        // Ended (cancelled) and deleted (purged, as pruning does) while the input is still open:
        // its record is gone before waiting begins.
        #expect(try stack.store.cancel(["pruned-1"], at: currentEpochMilliseconds()) == [.cancelled(from: .queued)])
        #expect(try stack.store.purge(status: .cancelled, type: nil, finishedBy: nil) == ["pruned-1"])
        #expect(try run.end() == 1, "an outcome no longer known is not a success")
        let stderr = try String(contentsOf: run.errorLog, encoding: .utf8)
        #expect(stderr.contains("1 tasks: 0 succeeded, 0 failed, 1 pruned before they were read"), "\(stderr)")
        #expect(stderr.contains("a longer --keep-succeeded and --keep-failed"), "\(stderr)")
        #expect(run.reader.nextLine(timeout: .seconds(5)) == TaskTable.header)
        let line = run.reader.nextLine(timeout: .seconds(5))
        #expect(line?.hasPrefix("pruned-1 ") == true && line?.contains("PRUNED") == true, "\(line ?? "")")
    }
}

extension ProducerTests {
    @Test("--wait after ids that already exist waits for those tasks too, and counts them in the summary, the table and the exit status")
    func waitForDuplicates() throws {
        let stack = try IntegrationStack(label: "producer-dup-wait")
        let first = try stack.run(input: StreamedRun.taskLines(["again-ok", "again-cancelled"]))
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try stack.store.cancel(["again-cancelled"], at: currentEpochMilliseconds()) == [.cancelled(from: .queued)])
        // No worker runs yet: again-ok stays QUEUED while the re-run reads its input.
        let run = try StreamedRun(stack, arguments: ["--wait", "--results"])
        run.send(["again-ok", "again-cancelled"])
        for id in ["again-ok", "again-cancelled"] {
            #expect(run.reader.nextLine(timeout: .seconds(20)) == "\(id) (already exists, not published again)")
        }
        try run.input.fileHandleForWriting.close()
        #expect(try stack.store.statuses(of: ["again-ok"]) == [.queued])
        let worker = try stack.startWorker("wdup")
        defer { WebServerProcess.terminate(worker) }
        #expect(IntegrationStack.waitForExit(run.process, timeout: .seconds(30)) == 1, "a task waited for was cancelled")
        #expect(try stack.store.statuses(of: ["again-ok"]) == [.success], "waited until the existing task ran")
        let stderr = try String(contentsOf: run.errorLog, encoding: .utf8)
        #expect(stderr.contains("2 tasks: 1 succeeded, 1 failed"), "\(stderr)")
        #expect(run.reader.nextLine(timeout: .seconds(5)) == TaskTable.header)
        let rows = [run.reader.nextLine(timeout: .seconds(5)), run.reader.nextLine(timeout: .seconds(5))]
        #expect(rows[0]?.hasPrefix("again-ok ") == true && rows[0]?.contains("SUCCESS") == true, "\(rows)")
        #expect(rows[1]?.hasPrefix("again-cancelled ") == true && rows[1]?.contains("CANCELLED") == true, "\(rows)")
    }
}

/// `yadtq-run --topic <the stack's topic>` reading the lines a test writes into a pipe; its
/// standard output read line by line, its standard error in an artifact file.
private struct StreamedRun {
    let process = Process()
    let input = Pipe()
    let reader: LineReader
    let errorLog: URL
    /// The run's working folder, where it writes the tasks of a batch whose outcome is unknown.
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-streamed-run-\(UUID().uuidString)")

    init(_ stack: IntegrationStack, arguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: stack.binDirectory + "/yadtq-run")
        process.arguments = ["--topic", stack.topic] + arguments
        process.environment = stack.environment
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        process.currentDirectoryURL = folder
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        let name = "\(stack.settings.namespace)-run.log"
        process.standardError = try IntegrationStack.artifact(name)
        errorLog = IntegrationStack.repository.appendingPathComponent(".test-artifacts/\(name)")
        try process.run()
        reader = LineReader(output.fileHandleForReading)
    }

    /// Writes one `add` task line per id.
    func send(_ ids: [String]) {
        input.fileHandleForWriting.write(Data(Self.taskLines(ids).utf8))
    }

    /// One `add` task line per id.
    static func taskLines(_ ids: [String]) -> String {
        ids.map { #"{"id": "\#($0)", "type": "add", "args": [1, 1]}"# + "\n" }.joined()
    }

    /// Publishes `ids` (and reads their ids back), then fills Redis (it refuses every write that
    /// needs memory), writes `lines` and closes the input. Redis has room again on return.
    /// - Returns: the exit status.
    func publishThenFillRedis(_ ids: [String], then lines: String, stack: IntegrationStack) throws -> Int32 {
        send(ids)
        for id in ids { #expect(reader.nextLine(timeout: .seconds(20)) == id) }
        _ = try stack.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "1"])
        defer { _ = try? stack.redisOnEveryNode(["CONFIG", "SET", "maxmemory", "0"]) }
        input.fileHandleForWriting.write(Data(lines.utf8))
        return try end()
    }

    /// Closes the input and returns the exit status (-1: still running after 20 s).
    func end() throws -> Int32 {
        try input.fileHandleForWriting.close()
        return IntegrationStack.waitForExit(process, timeout: .seconds(20)) ?? -1
    }
}

/// Reads lines from a pipe on a thread of its own, so a test can wait for one with a timeout.
private final class LineReader: @unchecked Sendable {
    // @unchecked Sendable: `lines` and `buffer` are guarded by `condition`.
    private let condition = NSCondition()
    private var lines: [String] = []
    private var buffer: [UInt8] = []

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                condition.withLock {
                    buffer += data
                    while let newline = buffer.firstIndex(of: 10) {
                        lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                        buffer.removeSubrange(...newline)
                    }
                    condition.broadcast()
                }
            }
        }
        thread.start()
    }

    /// The next line, or `nil` when none arrives within `timeout`.
    func nextLine(timeout: Duration) -> String? {
        let deadline = Date().addingTimeInterval(timeout.inSeconds)
        return condition.withLock {
            while lines.isEmpty {
                if !condition.wait(until: deadline) { return nil }
            }
            return lines.removeFirst()
        }
    }
}
