import Foundation
import Logging
import Testing
import YADTQCore

/// The harness of the fault-injection tests: like ``IntegrationStack`` (private namespace,
/// topic, group and plugins), but it can also run its own broker and Redis on free ports,
/// so a test may kill Redis or freeze the broker without touching the tests running beside it.
final class ChaosStack: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable after init.
    /// Namespace, topic, group, plugins and the command runners.
    let base: IntegrationStack
    /// The folder of the private services (pid files, logs), or the shared stack's.
    let stackDirectory: String?
    let ownsServices: Bool
    private let brokerPort: String
    private let redisPort: String

    var settings: YADTQSettings { base.settings }
    var topic: String { base.topic }
    var store: TaskStore { base.store }
    private var repository: URL { IntegrationStack.repository }

    /// - Parameters:
    ///   - privateServices: start a broker and Redis of its own (stopped by ``shutDown()``).
    ///   - extraPlugins: test-only task types (type -> Lua source).
    init(privateServices: Bool = false, extraPlugins: [String: String] = [:]) throws {
        var environment = ProcessInfo.processInfo.environment
        let repository = IntegrationStack.repository
        ownsServices = privateServices
        if privateServices {
            let suffix = UUID().uuidString.prefix(8).lowercased()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-chaos-stack-\(suffix)").path
            let ports = try Self.shell(#"source "$0/scripts/lib.sh"; b=$(free_port); r=$(free_port); while [[ $r == "$b" ]]; do r=$(free_port); done; echo "$b $r""#, [repository.path])
                .split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
            brokerPort = ports[0]
            redisPort = ports[1]
            stackDirectory = directory
            environment["YADTQ_BROKERS"] = "127.0.0.1:\(brokerPort)"
            environment["YADTQ_REDIS"] = "redis://127.0.0.1:\(redisPort)/0"
        } else {
            stackDirectory = environment["YADTQ_STACK_DIR"]
            brokerPort = ""
            redisPort = ""
        }
        base = try IntegrationStack(
            environment: environment, label: "chaos",
            extraPlugins: extraPlugins.merging(Self.plugins, uniquingKeysWith: { mine, _ in mine }))
        if privateServices { try startServices() }
    }

    /// Test plugins every chaos test has.
    static let plugins = [
        // a + b after sleeping `seconds` without using the CPU; the result names the
        // attempt that computed it, so a stale attempt's result would show.
        "stamp_add": """
            return function(args, task)
              if (args[3] or 0) > 0 then task.sleep(args[3]) end
              return { sum = args[1] + args[2], attempt = task.attempt }
            end
            """
    ]

    /// Starts whichever private service is not running (again on the same ports and data).
    func startServices() throws {
        guard let stackDirectory, ownsServices else { return }
        _ = try Self.shell(#"source "$0/scripts/lib.sh"; stack_up "$1" "$2" "$3" 2>&1"#,
            [repository.path, stackDirectory, brokerPort, redisPort])
    }

    /// Stops the private services and removes the plugin copy.
    func shutDown() {
        if ownsServices, let stackDirectory {
            if let pid = try? servicePID("tansu") { kill(pid, SIGCONT) }
            _ = try? Self.shell(#"source "$0/scripts/lib.sh"; stack_down "$1" 2>&1; rm -rf "$1""#, [repository.path, stackDirectory])
        }
        try? FileManager.default.removeItem(atPath: base.pluginsDirectory)
    }

    /// The pid of `tansu` or `redis` from the stack's pid file.
    func servicePID(_ service: String) throws -> pid_t {
        let directory = try #require(stackDirectory, "needs YADTQ_STACK_DIR or a private stack")
        let text = try String(contentsOfFile: directory + "/\(service).pid", encoding: .utf8)
        return try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// Starts `yadtq-run` reading a pipe, and feeds it `lines` over `seconds` from a thread.
    func streamRun(_ lines: [String], over seconds: Double) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: base.binDirectory + "/yadtq-run")
        process.arguments = ["--topic", topic]
        process.environment = base.environment
        let input = Pipe()
        process.standardInput = input
        let log = try IntegrationStack.artifact("\(settings.namespace)-run.log")
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = log
        try process.run()
        let writer = input.fileHandleForWriting
        let chunks = max(1, Int(seconds * 10))
        let perChunk = lines.count / chunks + 1
        let thread = Thread {
            for start in stride(from: 0, to: lines.count, by: perChunk) {
                let chunk = lines[start..<min(start + perChunk, lines.count)].joined(separator: "\n") + "\n"
                writer.write(Data(chunk.utf8))
                Thread.sleep(forTimeInterval: seconds / Double(chunks))
            }
            try? writer.close()
        }
        thread.start()
        return process
    }

    /// Writes raw messages straight to the topic with the Python Kafka client (bypassing
    /// yadtq-run); returns each message's partition and offset.
    func produceRaw(_ values: [[UInt8]], partition: Int32) throws -> [(partition: Int32, offset: Int64)] {
        let script = """
            import sys, confluent_kafka
            p = confluent_kafka.Producer({"bootstrap.servers": sys.argv[1], "message.max.bytes": 16 * 1024 * 1024})
            out = []
            def done(err, msg):
                if err: raise SystemExit(f"delivery failed: {err}")
                out.append(f"{msg.partition()} {msg.offset()}")
            values = [bytes.fromhex(line) for line in sys.stdin.read().split()]
            for v in values:
                p.produce(sys.argv[2], value=v, partition=int(sys.argv[3]), on_delivery=done)
                p.poll(0)
            p.flush(60)
            print("\\n".join(out))
            """
        let hex = values.map { value in value.map { String(format: "%02x", $0) }.joined().isEmpty ? "00" : value.map { String(format: "%02x", $0) }.joined() }
        let output = try Self.python(script, [settings.brokers, topic, String(partition)], input: hex.joined(separator: "\n"))
        return output.split(separator: "\n").map { line in
            let parts = line.split(separator: " ")
            return (Int32(parts[0]) ?? -1, Int64(parts[1]) ?? -1)
        }
    }

    /// The group's committed offset per partition (-1001 when none), read with the Python client.
    func committedOffsets(partitions: Int) throws -> [Int64] {
        let script = """
            import sys, confluent_kafka
            c = confluent_kafka.Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2]})
            tps = [confluent_kafka.TopicPartition(sys.argv[3], p) for p in range(int(sys.argv[4]))]
            print(" ".join(str(tp.offset) for tp in c.committed(tps, timeout=10)))
            c.close()
            """
        return try Self.python(script, [settings.brokers, settings.group, topic, String(partitions)])
            .split(separator: " ").compactMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// What must never change once a task is terminal.
    struct Terminal: Equatable {
        var status: TaskStatus
        var result: JSONValue?
        var error: String?
        var finishedAt: Int64?
        var worker: String?
    }

    /// The terminal tasks among `ids` now, to compare with later (a rewrite would show).
    func terminalSnapshot(_ ids: [String]) throws -> [String: Terminal] {
        var snapshot: [String: Terminal] = [:]
        for record in try base.records(ids).compactMap({ $0 }) where record.status.isTerminal {
            snapshot[record.id] = Terminal(
                status: record.status, result: record.result, error: record.error, finishedAt: record.finishedAt,
                worker: record.worker)
        }
        return snapshot
    }

    /// `stamp_add` tasks: (lines, ids, expected sums).
    static func stampTasks(_ count: Int, prefix: String, nap: Double) -> (lines: [String], ids: [String]) {
        let ids = (0..<count).map { "\(prefix)-\($0)" }
        let lines = (0..<count).map { #"{"id": "\#(ids[$0])", "type": "stamp_add", "args": [\#($0), 1, \#(nap)]}"# }
        return (lines, ids)
    }

    /// Checks the final records of `stamp_add` tasks: each SUCCESS with the right sum,
    /// computed by the attempt that is the task's last (no stale result), attempts within
    /// max_attempts, and nothing in `snapshots` rewritten. Returns how many were wrong.
    @discardableResult
    func verifyStamped(_ ids: [String], records: [TaskRecord?], snapshots: [[String: Terminal]] = [],
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        var wrong = 0
        for (index, record) in records.enumerated() {
            guard let record, record.status == .success,
                record.result?["sum"]?.intValue == Int64(index + 1),
                record.result?["attempt"]?.intValue == Int64(record.attempts),
                record.attempts <= record.maxAttempts
            else {
                wrong += 1
                if wrong <= 3 {
                    Issue.record("\(ids[index]): \(String(describing: record))", sourceLocation: sourceLocation)
                }
                continue
            }
        }
        let now = Dictionary(uniqueKeysWithValues: records.compactMap { $0 }.map {
            ($0.id, Terminal(status: $0.status, result: $0.result, error: $0.error, finishedAt: $0.finishedAt, worker: $0.worker))
        })
        var rewritten = 0
        for snapshot in snapshots {
            for (id, before) in snapshot where now[id] != before {
                rewritten += 1
                if rewritten <= 3 {
                    Issue.record("\(id) rewritten after it was terminal: \(before) -> \(String(describing: now[id]))", sourceLocation: sourceLocation)
                }
            }
        }
        #expect(wrong == 0, sourceLocation: sourceLocation)
        #expect(rewritten == 0, sourceLocation: sourceLocation)
        let counts = try store.counts()
        #expect(counts[.queued] == 0 && counts[.processing] == 0, "left QUEUED/PROCESSING: \(counts)", sourceLocation: sourceLocation)
        return wrong
    }

    /// Waits until `condition` holds or `timeout` passes.
    @discardableResult
    static func waitUntil(_ timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try condition()
    }

    /// SIGTERM, then wait: a worker must leave cleanly.
    static func stop(_ processes: [Process], timeout: Duration = .seconds(30)) -> [Int32?] {
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGTERM) }
        return processes.map { IntegrationStack.waitForExit($0, timeout: timeout) }
    }

    // MARK: - subprocesses

    /// Runs a bash script (with `set -euo pipefail`); throws unless it ran to its end.
    @discardableResult
    static func shell(_ script: String, _ arguments: [String]) throws -> String {
        let marker = "yadtq-chaos-script-completed"
        let text = try capture("/bin/bash", ["-c", "set -euo pipefail; " + script + "; echo " + marker] + arguments, input: nil)
        guard text.contains(marker) else {
            throw YADTQError(.configuration, "bash script failed: \(text.suffix(500))")
        }
        return text.replacingOccurrences(of: marker + "\n", with: "")
    }

    static func python(_ script: String, _ arguments: [String], input: String? = nil) throws -> String {
        try capture("/usr/bin/env", ["python3", "-c", script] + arguments, input: input)
    }

    /// True when `pid` is a zombie or gone.
    private static func hasExited(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        // "pid (comm) S ...": the state follows the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    private static func capture(_ executable: String, _ arguments: [String], input: String?) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        let inputFile: URL?
        if let input {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-chaos-in-\(UUID().uuidString)")
            try Data(input.utf8).write(to: file)
            process.standardInput = try FileHandle(forReadingFrom: file)
            inputFile = file
        } else {
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            inputFile = nil
        }
        defer { if let inputFile { try? FileManager.default.removeItem(at: inputFile) } }
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let text = String(decoding: data, as: UTF8.self)
        // Not waitUntilExit(): on Linux it was seen to miss the exit of a shell that leaves
        // daemons behind (scripts/lib.sh's stack_up), hanging for ever with the shell a zombie.
        let deadline = ContinuousClock.now + .seconds(60)
        while process.isRunning && !Self.hasExited(process.processIdentifier) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        if process.isRunning { return text }  // exited (a zombie) but unnoticed: the caller checks the output
        guard process.terminationStatus == 0 else {
            throw YADTQError(.configuration, "\(arguments.prefix(3)) failed with status \(process.terminationStatus): \(text.suffix(500))")
        }
        return text
    }
}
