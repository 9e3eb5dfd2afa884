import Foundation
import Logging
import Testing
import YADTQCore

/// The real Redis and broker that `scripts/test` starts, with a private namespace,
/// topic and consumer group per test so tests never see each other's tasks.
struct IntegrationStack {
    /// Integration tests need the stack `scripts/test` starts; without it they are skipped.
    static let isAvailable = ProcessInfo.processInfo.environment["YADTQ_TEST_STACK"] == "1"
    /// The stack's Redis is a cluster whose nodes' pid files are in `YADTQ_STACK_DIR` (the
    /// cluster pass of scripts/test, whose masters have a replica each).
    static let isClusterStack = isAvailable && ProcessInfo.processInfo.environment["YADTQ_STACK_DIR"] != nil
        && (try? YADTQSettings(environment: ProcessInfo.processInfo.environment))?.redis.isCluster == true

    let settings: YADTQSettings
    let topic: String
    let binDirectory: String
    let pluginsDirectory: String
    /// The environment the stack was made from (the broker and Redis addresses come from it).
    let baseEnvironment: [String: String]
    let logger = Logger(label: "yadtq-test")

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// - Parameters:
    ///   - environment: where `YADTQ_BROKERS`/`YADTQ_REDIS` come from (a private stack may override them).
    ///   - label: starts the namespace, group and topic names, which are otherwise random.
    ///   - extraPlugins: test-only task types (type -> Lua source), added to a private copy
    ///     of the shipped plugins.
    init(environment: [String: String] = ProcessInfo.processInfo.environment, label: String = "test",
         extraPlugins: [String: String] = [:]) throws {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        var settings = try YADTQSettings(environment: environment)
        settings.namespace = "\(label)-\(suffix)"
        settings.group = "\(label)-group-\(suffix)"
        self.topic = "\(label)-topic-\(suffix)"
        baseEnvironment = environment
        let repository = Self.repository
        let shipped = repository.appendingPathComponent("plugins")
        let plugins = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-plugins-\(label)-\(suffix)")
        try FileManager.default.copyItem(at: shipped, to: plugins)
        for (type, source) in extraPlugins {
            try Data(source.utf8).write(to: plugins.appendingPathComponent(type + ".lua"))
        }
        settings.pluginsDirectory = plugins.path
        pluginsDirectory = plugins.path
        self.settings = settings
        binDirectory = environment["YADTQ_BIN_DIR"] ?? repository.appendingPathComponent(".build/release").path
    }

    var store: TaskStore { TaskStore(settings: settings, logger: logger) }

    /// The environment a YADTQ command of this test runs with.
    var environment: [String: String] {
        var environment = baseEnvironment
        environment["YADTQ_NAMESPACE"] = settings.namespace
        environment["YADTQ_GROUP"] = settings.group
        environment["YADTQ_PLUGINS"] = pluginsDirectory
        environment["YADTQ_TOPIC"] = topic
        return environment
    }

    /// Starts `yadtq-worker name topic` (this test's topic unless `topic` names another) with
    /// its output appended to a log file under `.test-artifacts` (a restarted worker adds to the same log).
    func startWorker(
        _ name: String, topic: String? = nil, arguments: [String] = [], environment extra: [String: String] = [:]
    ) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binDirectory + "/yadtq-worker")
        process.arguments = [name, topic ?? self.topic] + arguments
        process.environment = environment.merging(extra) { _, new in new }
        let log = try Self.artifact("\(settings.namespace)-\(name).log")
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return process
    }

    /// The log of a worker started with ``startWorker(_:arguments:environment:)``.
    func workerLog(_ name: String) -> String {
        let path = Self.repository.appendingPathComponent(".test-artifacts/\(settings.namespace)-\(name).log").path
        return (try? String(contentsOfFile: path, encoding: .isoLatin1)) ?? ""
    }

    typealias RunOutcome = (status: Int32, reason: Process.TerminationReason, stdout: String, stderr: String)

    /// Runs `yadtq-run` with `input` on standard input, to completion.
    func run(input: String, arguments: [String] = []) throws -> RunOutcome {
        try run(input: Array(input.utf8), arguments: arguments)
    }

    /// Runs `yadtq-run` with `input` (any bytes) on standard input, to completion.
    func run(input: [UInt8], arguments: [String] = [], closedOutput: Bool = false) throws -> RunOutcome {
        try runCommand("yadtq-run", arguments: ["--topic", topic] + arguments, input: input, closedOutput: closedOutput)
    }

    /// Runs one of the built commands with `input` on standard input, to completion.
    /// - Parameter closedOutput: standard output is a pipe whose reader is gone before the
    ///   command starts (`| head -0`): every write to it fails. The outcome's `stdout` is then empty.
    /// - Parameter extra: variables set over this test's ``environment``.
    func runCommand(
        _ command: String, arguments: [String], input: [UInt8], closedOutput: Bool = false,
        environment extra: [String: String] = [:]
    ) throws -> RunOutcome {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = ["in", "out", "err"].map { directory.appendingPathComponent($0) }
        try Data(input).write(to: files[0])
        for file in files.dropFirst() { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binDirectory + "/" + command)
        process.arguments = arguments
        process.environment = environment.merging(extra) { _, new in new }
        process.standardInput = try FileHandle(forReadingFrom: files[0])
        if closedOutput {
            let pipe = Pipe()
            try pipe.fileHandleForReading.close()
            process.standardOutput = pipe
        } else {
            process.standardOutput = try FileHandle(forWritingTo: files[1])
        }
        process.standardError = try FileHandle(forWritingTo: files[2])
        try process.run()
        process.waitUntilExit()
        let output = try files.dropFirst().map { String(decoding: try Data(contentsOf: $0), as: UTF8.self) }
        return (process.terminationStatus, process.terminationReason, output[0], output[1])
    }

    /// Waits for a process to exit; fails the test and kills it after `timeout`.
    @discardableResult
    static func waitForExit(_ process: Process, timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.interrupt()
                Thread.sleep(forTimeInterval: 2)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                Issue.record("process \(process.arguments ?? []) did not exit within \(timeout)")
                return nil
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return process.terminationStatus
    }

    /// Runs `yadtq-run` with `input` and expects every task it publishes to end SUCCESS within
    /// `timeout`; returns their ids.
    @discardableResult
    func runSucceeding(_ input: String, timeout: Duration = .seconds(60)) throws -> [String] {
        let outcome = try run(input: input)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let ids = outcome.stdout.split(separator: "\n").map(String.init)
        #expect(try waitForTerminal(ids, timeout: timeout).allSatisfy { $0?.status == .success })
        return ids
    }

    /// Polls until every task is terminal or `timeout` passes; returns the records.
    func waitForTerminal(_ ids: [String], timeout: Duration) throws -> [TaskRecord?] {
        let deadline = ContinuousClock.now + timeout
        let store = self.store
        while ContinuousClock.now < deadline {
            let statuses = try store.statuses(of: ids)
            if statuses.allSatisfy({ $0?.isTerminal == true }) { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return try records(ids)
    }

    /// The records of `ids` as operators see them: `yadtq-ctl status --json`, a thousand
    /// ids per call, so every test reads tasks through the outside view whatever the Redis
    /// layout behind it. An unknown id is `nil`.
    func records(_ ids: [String]) throws -> [TaskRecord?] {
        var found: [String: TaskRecord] = [:]
        for start in stride(from: 0, to: ids.count, by: 1000) {
            let outcome = try ctl(["status", "--json"] + ids[start..<min(start + 1000, ids.count)])
            #expect(outcome.status == 0 || outcome.stderr.contains("no task with id"), "\(outcome.stderr)")
            for line in outcome.stdout.split(separator: "\n") {
                let record = try #require(TaskRecord(outsideView: try JSONValue(parsing: String(line))), "\(line)")
                found[record.id] = record
            }
        }
        return ids.map { found[$0] }
    }

    /// Runs `yadtq-ctl` with this test's settings (and `extra` variables over them), to completion.
    func ctl(_ arguments: [String], environment extra: [String: String] = [:]) throws -> RunOutcome {
        try runCommand("yadtq-ctl", arguments: arguments, input: [], environment: extra)
    }

    /// Reads every message of a topic from the beginning with the Python Kafka client
    /// that `scripts/setup` installs, so the test does not check YADTQ with its own code.
    func readTopic(_ name: String, expecting count: Int, timeout: Duration = .seconds(30)) throws -> [String] {
        try consume(name, count: count, timeout: timeout, printing: #"m.value().decode(errors="replace")"#)
    }

    /// The partition of each of the first `count` messages of a topic, read as ``readTopic``
    /// reads them.
    func messagePartitions(_ name: String, expecting count: Int, timeout: Duration = .seconds(30)) throws -> [Int] {
        try consume(name, count: count, timeout: timeout, printing: "m.partition()").compactMap { Int($0) }
    }

    /// Up to `count` messages of a topic from the beginning, each printed as the Python
    /// expression `printing` of its message `m` gives it.
    private func consume(_ name: String, count: Int, timeout: Duration, printing: String) throws -> [String] {
        let script = """
            import sys, time, confluent_kafka
            c = confluent_kafka.Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[3],
                "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
            c.subscribe([sys.argv[2]])
            seen, deadline = 0, time.time() + float(sys.argv[5])
            while seen < int(sys.argv[4]) and time.time() < deadline:
                m = c.poll(0.5)
                if m is None or m.error(): continue
                print(\(printing)); seen += 1
            c.close()
            """
        return try Self.outputLines(of: [
            "python3", "-c", script, settings.brokers, name, "reader-\(UUID().uuidString)", String(count),
            String(timeout.inSeconds),
        ])
    }

    /// Each topic's partition count, as the broker lists them to the Python Kafka client.
    func topicPartitions() throws -> [String: Int] {
        let script = """
            import sys, confluent_kafka.admin
            admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": sys.argv[1]})
            for name, topic in admin.list_topics(timeout=10).topics.items():
                print(name, len(topic.partitions))
            """
        var counts: [String: Int] = [:]
        for line in try Self.outputLines(of: ["python3", "-c", script, settings.brokers]) {
            let fields = line.split(separator: " ")
            if fields.count == 2, let count = Int(fields[1]) { counts[String(fields[0])] = count }
        }
        return counts
    }

    /// Deletes `name` and creates it again with `partitions` partitions, with the Python Kafka
    /// client's admin API (as an operator would with Kafka's tools).
    func remakeTopic(_ name: String, partitions: Int) throws {
        let script = """
            import sys, time, confluent_kafka.admin
            admin = confluent_kafka.admin.AdminClient({"bootstrap.servers": sys.argv[1]})
            name, partitions = sys.argv[2], int(sys.argv[3])
            for future in admin.delete_topics([name]).values(): future.result()
            deadline = time.time() + 20
            while name in admin.list_topics(timeout=10).topics and time.time() < deadline: time.sleep(0.2)
            for future in admin.create_topics([confluent_kafka.admin.NewTopic(name, partitions)]).values(): future.result()
            while len(admin.list_topics(timeout=10).topics.get(name).partitions if name in admin.list_topics(timeout=10).topics else {}) != partitions and time.time() < deadline: time.sleep(0.2)
            print("remade")
            """
        let output = try Self.outputLines(of: ["python3", "-c", script, settings.brokers, name, String(partitions)])
        guard output == ["remade"] else { throw WebTestError("topic \(name) could not be made again: \(output)") }
    }

    /// Runs `redis-cli ARGUMENTS` against every node of the test's Redis (one, or each
    /// master of a cluster); the lines each printed, node by node.
    func redisOnEveryNode(_ arguments: [String]) throws -> [[String]] {
        let redis = settings.redis
        var environment = ProcessInfo.processInfo.environment
        environment["REDISCLI_AUTH"] = redis.password
        return try redis.nodes.map { node in
            try Self.outputLines(
                of: ["redis-cli", "-h", node.host, "-p", String(node.port), "-n", String(redis.database)] + arguments,
                environment: environment)
        }
    }

    /// Runs a program found on PATH and returns the lines of its standard output.
    static func outputLines(of arguments: [String], environment: [String: String]? = nil) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// A file under `.test-artifacts/` for logs a failed run leaves behind.
    static func artifact(_ name: String) throws -> FileHandle {
        let directory = repository.appendingPathComponent(".test-artifacts")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    }
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(_ timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.1)
    }
    return try condition()
}
