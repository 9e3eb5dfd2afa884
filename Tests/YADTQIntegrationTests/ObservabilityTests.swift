import Foundation
import Testing
import YADTQCore

/// The first five minutes (the design card's commands as typed) and the metrics endpoints,
/// against the real stack.
@Suite("Observability", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct ObservabilityTests {
    @Test("yadtq-worker w1 t, yadtq-monitor and yadtq-run tasks.d/batch.txt, as typed: the worker waits, the monitor shows it, the batch finishes")
    func designCardAsTyped() throws {
        let stack = try IntegrationStack(label: "card")
        var environment = stack.environment
        environment["YADTQ_TOPIC"] = nil
        environment["YADTQ_PLUGINS"] = nil
        environment["PATH"] = stack.binDirectory + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        let artifacts = IntegrationStack.repository.appendingPathComponent(".test-artifacts").path
        func typed(_ line: String, log: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "exec " + line]
            process.environment = environment
            process.currentDirectoryURL = IntegrationStack.repository
            _ = FileManager.default.createFile(atPath: artifacts + "/" + log, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: artifacts + "/" + log))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            return process
        }
        func output(_ log: String) -> String {
            (try? String(contentsOfFile: artifacts + "/" + log, encoding: .utf8)) ?? ""
        }

        let worker = try typed("yadtq-worker w1 t", log: "\(stack.settings.namespace)-w1.log")
        defer { if worker.isRunning { worker.interrupt() } }
        // Before any topic exists the monitor shows the worker ALIVE, waiting for it.
        var waiting: JSONValue?
        let deadline = ContinuousClock.now + .seconds(30)
        while waiting == nil, ContinuousClock.now < deadline {
            let lines = try IntegrationStack.outputLines(
                of: [stack.binDirectory + "/yadtq-monitor", "--once", "--json"], environment: environment)
            let snapshot = try lines.last.map { try JSONValue(parsing: $0) }
            waiting = snapshot?["workers"]?.arrayValue?.first { $0["name"]?.stringValue == "w1" && $0["state"]?.stringValue == "waiting" }
            if waiting == nil { Thread.sleep(forTimeInterval: 0.3) }
        }
        let shown = try #require(waiting, "the monitor never showed w1 waiting")
        #expect(shown["verdict"]?.stringValue == "ALIVE")
        #expect(shown["reason"]?.stringValue?.contains("waiting for topic t") == true)
        #expect(shown["topic"]?.stringValue == "t")
        let table = try IntegrationStack.outputLines(of: [stack.binDirectory + "/yadtq-monitor", "--once"], environment: environment)
        #expect(table.contains { $0.hasPrefix("w1") && $0.contains("ALIVE") && $0.contains("waiting for topic t") }, "\(table)")

        let monitor = try typed("yadtq-monitor", log: "\(stack.settings.namespace)-monitor.log")
        defer { if monitor.isRunning { monitor.interrupt() } }
        let run = try typed("yadtq-run tasks.d/batch.txt", log: "\(stack.settings.namespace)-run.log")
        #expect(IntegrationStack.waitForExit(run, timeout: .seconds(60)) == 0, "\(output("\(stack.settings.namespace)-run.log"))")
        let runLog = output("\(stack.settings.namespace)-run.log")
        #expect(runLog.contains("publishing to topic t"), "\(runLog)")

        // The batch ends with `end`: the worker drains it and exits, then so does the monitor.
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(120)) == 0)
        #expect(IntegrationStack.waitForExit(monitor, timeout: .seconds(60)) == 0)
        let records = try stack.records(["answer", "seed-format-1"])
        #expect(records.map { $0?.status } == [.success, .success])
        let counts = try stack.store.counts()
        #expect(counts[.success] == 13 && counts[.failed] == 1, "\(counts)")
        #expect(output("\(stack.settings.namespace)-monitor.log").contains("LAG"))
    }

    @Test("/metrics of the worker and of yadtq-web match what the run did; the lag falls to 0 once drained")
    func metricsMatchTheRun() throws {
        let stack = try IntegrationStack(label: "metrics")
        var lines = (1...20).map { "add \($0) 1" }
        lines += (1...3).map { #"{"type": "div", "args": [\#($0), 0], "max_attempts": 2}"# }
        // Types with no plugin fail at once and are counted as `unknown`: a producer's own
        // invented types must not make a series each.
        lines += ["nosuch_1 1", "nosuch_2 2"]
        let published = try stack.run(input: lines.joined(separator: "\n") + "\n", arguments: ["--partitions", "4"])
        #expect(published.status == 0, "\(published.stderr)")
        #expect(published.stderr.contains("no worker of group"), "\(published.stderr)")

        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }
        let before = try Self.samples(server.send("GET", "/metrics").body)
        // Before any commit the lag counts from the partition's start as the broker reports it.
        #expect(Self.total(before, "yadtq_consumer_lag", ["topic": stack.topic]) > 0)
        #expect(Self.value(before, "yadtq_tasks", ["status": "QUEUED"]) == 25)
        #expect((Self.value(before, "yadtq_oldest_queued_seconds") ?? -1) >= 0)
        // One series per master, labelled with the node the client reached.
        let used = before.filter { $0.name == "yadtq_redis_used_memory_bytes" }
        #expect(!used.isEmpty && used.allSatisfy { $0.value > 0 && !($0.labels["node"] ?? "").isEmpty }, "\(used)")
        #expect(before.filter { $0.name == "yadtq_redis_maxmemory_bytes" }.count == used.count)

        let worker = try stack.startWorker("wm", arguments: ["--metrics-port", "0", "--heartbeat-interval", "1s"])
        defer { WebServerProcess.terminate(worker) }
        var drained = false
        var web: [Sample] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while !drained, ContinuousClock.now < deadline {
            web = try Self.samples(server.send("GET", "/metrics").body)
            // The kept counts and the finished totals are separate counters, read one after
            // the other: a task finishing between the two reads shows in one scrape's totals
            // and only the next scrape's counts, so the run is drained when both agree.
            drained = Self.value(web, "yadtq_tasks_finished_total", ["status": "SUCCESS"]) == 20
                && Self.value(web, "yadtq_tasks_finished_total", ["status": "FAILED"]) == 5
                && Self.value(web, "yadtq_tasks", ["status": "SUCCESS"]) == 20
                && Self.value(web, "yadtq_tasks", ["status": "FAILED"]) == 5
                && Self.value(web, "yadtq_tasks", ["status": "QUEUED"]) == 0
                && Self.total(web, "yadtq_consumer_lag", ["topic": stack.topic]) == 0
            if !drained { Thread.sleep(forTimeInterval: 0.5) }
        }
        #expect(drained, "\(web)")
        #expect(Self.value(web, "yadtq_workers", ["verdict": "ALIVE"]) == 1)
        #expect(Self.value(web, "yadtq_oldest_queued_seconds") == 0)
        #expect(web.filter { $0.name == "yadtq_consumer_lag" }.count == 4)

        let beat = try #require(try stack.store.workerHeartbeats().first { $0.name == "wm" }?.heartbeat)
        let port = try #require(beat.metricsPort, "no metrics_port in \(beat)")
        let own = try Self.samples(try Self.curl("http://127.0.0.1:\(port)/metrics"))
        #expect(Self.value(own, "yadtq_worker_tasks_total", ["type": "add", "outcome": "success"]) == 20)
        #expect(Self.value(own, "yadtq_worker_tasks_total", ["type": "div", "outcome": "retry"]) == 3)
        #expect(Self.value(own, "yadtq_worker_tasks_total", ["type": "div", "outcome": "failure"]) == 3)
        #expect(Self.value(own, "yadtq_worker_task_seconds_count", ["type": "add"]) == 20)
        #expect(Self.value(own, "yadtq_worker_task_seconds_count", ["type": "div"]) == 6)
        #expect(Self.value(own, "yadtq_worker_tasks_total", ["type": "unknown", "outcome": "failure"]) == 2)
        #expect(!own.contains { $0.labels["type"]?.hasPrefix("nosuch") == true }, "\(own)")
        // Each attempt was in one batch: 25 tasks, and the 3 retries of `div`.
        #expect(Self.value(own, "yadtq_worker_batch_size_sum") == 28)
        #expect((Self.value(own, "yadtq_worker_redis_seconds_count") ?? 0) >= 2)
        #expect(Self.value(own, "yadtq_worker_partitions") == 4)
        #expect((Self.value(own, "yadtq_worker_rebalances_total") ?? 0) >= 1)
        #expect(Self.value(own, "yadtq_worker_commit_failures_total") == 0, "every commit taken by a healthy broker")
        #expect((Self.value(own, "process_resident_memory_bytes") ?? 0) > 1_000_000)
    }

    @Test("the metrics' allowed hosts are read only by a worker that serves metrics: a bad one stops that worker with the reason, and no other")
    func workerMetricsHostsReadOnlyWithMetrics() throws {
        let stack = try IntegrationStack(label: "metrics-bad-hosts")
        let bad = ["YADTQ_WORKER_METRICS_ALLOWED_HOSTS": "https://metrics.example"]
        let check = try stack.runCommand("yadtq-worker", arguments: ["--check", stack.pluginsDirectory], input: [], environment: bad)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let serving = try stack.runCommand(
            "yadtq-worker", arguments: ["wb", stack.topic, "--metrics-port", "0"], input: [], environment: bad)
        #expect(serving.status != 0)
        #expect(serving.stderr.contains("YADTQ_WORKER_METRICS_ALLOWED_HOSTS: 'https://metrics.example' has a scheme"), "\(serving.stderr)")
    }

    @Test("a worker's /metrics answers its own names and the ones --metrics-allowed-hosts adds; another Host gets a 400 saying what to do")
    func workerMetricsHosts() throws {
        let stack = try IntegrationStack(label: "metrics-hosts")
        let worker = try stack.startWorker(
            "wh", arguments: ["--metrics-port", "0"],
            environment: ["YADTQ_WORKER_METRICS_ALLOWED_HOSTS": "metrics.example,.scrape.example"])
        defer { WebServerProcess.terminate(worker) }
        var port: Int?
        let deadline = ContinuousClock.now + .seconds(60)
        while port == nil, ContinuousClock.now < deadline {
            let log = stack.workerLog("wh")
            port = log.firstMatch(of: /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/).flatMap { Int($0.1) }
            if port == nil { Thread.sleep(forTimeInterval: 0.2) }
        }
        let bound = try #require(port, "no metrics address in the log: \(stack.workerLog("wh"))")
        /// The status and body of a GET of the worker's /metrics with `host` as its Host header.
        func get(_ host: String, path: String = "/metrics") throws -> (status: Int, body: String) {
            let lines = try IntegrationStack.outputLines(of: [
                "/usr/bin/curl", "-sS", "--max-time", "10", "-H", "Host: \(host)", "-w", "\n%{http_code}",
                "http://127.0.0.1:\(bound)\(path)",
            ])
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
        let refused = try get("evil.example")
        #expect(refused.status == 400)
        #expect(refused.body.contains("does not answer to 'evil.example'"), "\(refused.body)")
        #expect(refused.body.contains("--metrics-allowed-hosts or YADTQ_WORKER_METRICS_ALLOWED_HOSTS"), "\(refused.body)")
        #expect(!refused.body.contains("yadtq_worker"), "no metric reaches a refused request")
        #expect(try get("evil.example", path: "/nothing").status == 400, "checked before routing")
        for host in ["127.0.0.1:\(bound)", "localhost:\(bound)", "metrics.example", "w1.scrape.example:9101"] {
            let served = try get(host)
            #expect(served.status == 200, "\(host): \(served.body)")
            #expect(served.body.contains("yadtq_worker_partitions"), "\(host)")
        }
    }

    // MARK: - Reading the exposition text with prometheus_client's parser

    struct Sample: CustomStringConvertible {
        var name: String
        var labels: [String: String]
        var value: Double
        var description: String { "\(name)\(labels) \(value)" }
    }

    /// Parses exposition text with `prometheus_client.parser.text_string_to_metric_families`
    /// (a parse error fails the test).
    static func samples(_ text: String) throws -> [Sample] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = []
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    out.append([s.name, s.labels, s.value])
            print(json.dumps(out))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "prometheus_client could not parse:\n\(text)\n\(problem)")
        let rows = try JSONValue(parsing: String(decoding: data, as: UTF8.self)).arrayValue ?? []
        return rows.compactMap { row in
            guard let name = row[0]?.stringValue, let labels = row[1]?.objectValue else { return nil }
            let value = row[2]?.doubleValue ?? row[2]?.intValue.map(Double.init) ?? .nan
            return Sample(name: name, labels: labels.compactMapValues(\.stringValue), value: value)
        }
    }

    static func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }

    static func total(_ samples: [Sample], _ name: String, _ labels: [String: String]) -> Double {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
            .reduce(0) { $0 + $1.value }
    }

    static func curl(_ url: String) throws -> String {
        try IntegrationStack.outputLines(of: ["/usr/bin/curl", "-sS", "--max-time", "10", url]).joined(separator: "\n") + "\n"
    }
}
