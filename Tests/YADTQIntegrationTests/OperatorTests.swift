import Foundation
import Testing
import YADTQCore

/// `yadtq-ctl cancel|retry|purge` and the web's cancel and retry endpoints, on the real stack.
@Suite("Operator changes", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct OperatorTests {
    @Test("a cancelled QUEUED task never runs; purge deletes it with its counts")
    func cancelQueuedThenPurge() throws {
        let stack = try IntegrationStack(label: "cancel")
        let tasks = """
            {"id": "doomed", "type": "add", "args": [1, 2]}
            {"id": "kept", "type": "add", "args": [3, 4]}
            """
        #expect(try stack.run(input: tasks + "\n").status == 0)
        let cancel = try stack.ctl(["cancel", "doomed"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.stdout.contains("doomed: QUEUED -> CANCELLED"), "\(cancel.stdout)")
        let again = try stack.ctl(["cancel", "doomed", "never-queued"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("doomed: CANCELLED, unchanged"), "\(again.stderr)")
        #expect(again.stderr.contains("no task with id 'never-queued'"), "\(again.stderr)")

        let worker = try stack.startWorker("w1")
        #expect(try stack.run(input: "end\n").status == 0)
        #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(60)) == 0)
        let records = try stack.records(["doomed", "kept"])
        #expect(records[0]?.status == .cancelled)
        #expect(records[0]?.attempts == 0)
        #expect(records[0]?.worker == nil, "no worker ever ran it")
        #expect(records[1]?.status == .success)
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 1, .failed: 0, .cancelled: 1])
        let listed = try stack.ctl(["ls", "--status", "cancelled", "--json"])
        #expect(try listed.stdout.split(separator: "\n").map { try JSONValue(parsing: String($0))["id"] } == ["doomed"])
        #expect(try stack.ctl(["retry", "kept"]).status == 1, "a SUCCESS task is not retried")

        let unconfirmed = try stack.ctl(["purge", "--status", "cancelled"])
        #expect(unconfirmed.status == 1, "no terminal to ask on: --yes is needed")
        #expect(try stack.store.record(id: "doomed") != nil)
        #expect(try stack.ctl(["purge", "--status", "queued", "--yes"]).status != 0, "only terminal statuses")
        let young = try stack.ctl(["purge", "--status", "cancelled", "--older-than", "1h", "--yes"])
        #expect(young.stdout.contains("deleted 0 "), "\(young.stdout)")
        let purge = try stack.ctl(["purge", "--status", "cancelled", "--yes"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(purge.stdout.contains("deleted 1 CANCELLED"), "\(purge.stdout)")
        #expect(try stack.store.record(id: "doomed") == nil)
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 1, .failed: 0, .cancelled: 0])
        #expect(try stack.ctl(["purge", "--status", "success", "--type", "concat", "--yes"]).stdout.contains("deleted 0 "))
        #expect(try stack.ctl(["purge", "--status", "success", "--type", "add", "--yes"]).stdout.contains("deleted 1 "))
        #expect(try stack.store.counts()[.success] == 0)
    }

    @Test("cancel, retry and purge --json: one JSON object per task on standard output, in the text output's words, nothing else")
    func changesAsJSON() throws {
        let stack = try IntegrationStack(label: "ctl-json")
        let tasks = ["j1", "j2", "j3"].map { #"{"id": "\#($0)", "type": "add", "args": [1, 2]}"# }.joined(separator: "\n")
        #expect(try stack.run(input: tasks + "\n").status == 0)
        func objects(_ outcome: IntegrationStack.RunOutcome) throws -> [JSONValue] {
            try outcome.stdout.split(separator: "\n").map { try JSONValue(parsing: String($0)) }
        }

        let cancel = try stack.ctl(["cancel", "j1", "j2", "nope", "--json"])
        #expect(cancel.status == 1, "an unknown id still fails the command")
        #expect(cancel.stderr.isEmpty, "\(cancel.stderr)")
        #expect(try objects(cancel) == [
            [
                "id": "j1", "status": "CANCELLED", "changed": true, "change": "cancelled", "from": "QUEUED",
                "result": "QUEUED -> CANCELLED",
            ],
            [
                "id": "j2", "status": "CANCELLED", "changed": true, "change": "cancelled", "from": "QUEUED",
                "result": "QUEUED -> CANCELLED",
            ],
            [
                "id": "nope", "status": .null, "changed": false, "error": "no task with id 'nope'",
                "result": "no task with id 'nope' (never queued, or expired after its retention)",
            ],
        ])

        let retry = try stack.ctl(["retry", "j1", "j3", "--json"])
        #expect(retry.status == 1, "j3 is QUEUED: not retried")
        #expect(retry.stderr.isEmpty, "\(retry.stderr)")
        #expect(try objects(retry) == [
            [
                "id": "j1", "status": "QUEUED", "changed": true, "change": "requeued",
                "result": "-> QUEUED, published again",
            ],
            [
                "id": "j3", "status": "QUEUED", "changed": false, "error": "a QUEUED task cannot be changed this way",
                "result": "QUEUED, unchanged (only FAILED or CANCELLED tasks can be retried)",
            ],
        ])
        let none = try stack.ctl(["retry", "--failed", "--json"])
        #expect(none.status == 0 && none.stdout.isEmpty, "no task: no line (\(none.stdout))")

        let purge = try stack.ctl(["purge", "--status", "cancelled", "--yes", "--json"])
        #expect(purge.status == 0, "\(purge.stderr)")
        #expect(try objects(purge) == [["id": "j2", "status": "CANCELLED", "changed": true, "change": "deleted", "result": "deleted"]])
        #expect(try stack.store.record(id: "j2") == nil)
        #expect(try stack.ctl(["purge", "--status", "cancelled", "--yes", "--json"]).stdout.isEmpty)
        #expect(try stack.ctl(["purge", "--status", "cancelled", "--yes"]).stdout == "deleted 0 CANCELLED tasks\n")
    }

    @Test("an id named twice in one cancel or retry is one task: changed, counted and published once, and reported for each time it is named")
    func repeatedIDs() throws {
        let stack = try IntegrationStack(label: "ctl-repeat")
        #expect(try stack.run(input: #"{"id": "twice", "type": "add", "args": [1, 2]}"# + "\n").status == 0)
        let cancel = try stack.ctl(["cancel", "twice", "twice"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.stdout == "twice: QUEUED -> CANCELLED\ntwice: QUEUED -> CANCELLED\n", "\(cancel.stdout)")
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 0, .failed: 0, .cancelled: 1])
        let retry = try stack.ctl(["retry", "twice", "twice", "--json"])
        #expect(retry.status == 0, "\(retry.stdout)")
        #expect(retry.stdout.split(separator: "\n").count == 2, "\(retry.stdout)")
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 1, .processing: 0, .success: 0, .failed: 0, .cancelled: 0])
        // The run's message and the retry's: the task is published again once.
        let messages = try stack.readTopic(stack.topic, expecting: 3, timeout: .seconds(10))
        #expect(messages.count == 2, "\(messages)")
    }

    @Test("retry queues a FAILED task again: after the plugin is fixed it ends SUCCESS with its old errors")
    func retryAfterFix() throws {
        let stack = try IntegrationStack(
            label: "retry", extraPlugins: ["flaky": #"return function(args) error("flaky is broken") end"#])
        let worker = try stack.startWorker("w1", arguments: ["--retry-delay", "10ms"])
        defer { if worker.isRunning { worker.terminate() } }
        #expect(try stack.run(input: #"{"id": "r1", "type": "flaky", "args": [], "max_attempts": 2}"# + "\n").status == 0)
        let failed = try stack.waitForTerminal(["r1"], timeout: .seconds(30))[0]
        #expect(failed?.status == .failed)
        #expect(failed?.errors.count == 2)

        try Data(#"return function(args) return "fixed" end"#.utf8)
            .write(to: URL(fileURLWithPath: stack.pluginsDirectory).appendingPathComponent("flaky.lua"))
        Thread.sleep(forTimeInterval: 3)  // workers reload plugins every second
        let retry = try stack.ctl(["retry", "r1"])
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(retry.stdout.contains("r1: -> QUEUED"), "\(retry.stdout)")
        let done = try stack.waitForTerminal(["r1"], timeout: .seconds(30))[0]
        #expect(done?.status == .success)
        #expect(done?.result == .string("fixed"))
        #expect(done?.attempts == 1)
        #expect(done?.errors.map(\.attempt) == [1, 2], "the earlier errors are kept")
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 1, .failed: 0, .cancelled: 0])
        #expect(try stack.ctl(["retry", "r1"]).status == 1, "a SUCCESS task is not retried")
        let none = try stack.ctl(["retry", "--failed"])
        #expect(none.status == 0 && none.stdout.contains("no FAILED task"), "\(none.stdout) \(none.stderr)")
    }

    @Test("retry --failed sends each task back to its own topic, whatever YADTQ_TOPIC says")
    func retryToOwnTopic() throws {
        let stack = try IntegrationStack(label: "retrytopics")
        let other = stack.topic + "-b"
        let task = #"{"id": "ID", "type": "div", "args": [1, 0], "max_attempts": 1}"# + "\n"
        #expect(try stack.run(input: task.replacing("ID", with: "on-a")).status == 0)
        let runB = try stack.runCommand(
            "yadtq-run", arguments: ["--topic", other], input: Array(task.replacing("ID", with: "on-b").utf8))
        #expect(runB.status == 0, "\(runB.stderr)")
        let workerA = try stack.startWorker("wA")
        defer { WebServerProcess.terminate(workerA) }
        let workerB = try stack.startWorker("wB", topic: other, environment: ["YADTQ_GROUP": stack.settings.group + "-b"])
        defer { WebServerProcess.terminate(workerB) }
        let failed = try stack.waitForTerminal(["on-a", "on-b"], timeout: .seconds(60))
        #expect(failed.map { $0?.errors.map(\.worker) } == [["wA"], ["wB"]])

        // yadtq-ctl's topic is the first one (YADTQ_TOPIC): only the task without a topic of its own would go there.
        let retry = try stack.ctl(["retry", "--failed"])
        #expect(retry.status == 0, "\(retry.stderr)")
        var again = try stack.waitForTerminal(["on-a", "on-b"], timeout: .seconds(60))
        let deadline = ContinuousClock.now + .seconds(60)
        while again.contains(where: { ($0?.errors.count ?? 0) < 2 }), ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
            again = try stack.waitForTerminal(["on-a", "on-b"], timeout: .seconds(60))
        }
        #expect(again.map { $0?.errors.map(\.worker) } == [["wA", "wA"], ["wB", "wB"]], "each ran again on its own topic's worker")
    }

    @Test("retry creates only the topics it publishes to, a missing one with yadtq-run's default partitions")
    func retryCreatesTopics() throws {
        let stack = try IntegrationStack(label: "retrycreates")
        let other = stack.topic + "-b"
        let run = try stack.runCommand(
            "yadtq-run", arguments: ["--topic", other, "--partitions", "2"],
            input: Array((#"{"id": "named", "type": "add", "args": [1, 2]}"# + "\n").utf8))
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try stack.ctl(["cancel", "named"]).status == 0)
        let retry = try stack.ctl(["retry", "--cancelled"])
        #expect(retry.status == 0, "\(retry.stderr)")
        var topics = try stack.topicPartitions()
        #expect(topics[other] == 2)
        #expect(topics[stack.topic] == nil && topics[stack.topic + ".dlq"] == nil, "only \(other) got a task: \(topics)")

        // A record that names no topic (as the builds before topics were kept wrote) goes to
        // yadtq-ctl's topic, which is then created as yadtq-run creates one.
        let unnamed = TaskMessage(id: "unnamed", type: "add", args: [1, 2], maxAttempts: 3, queuedAt: currentEpochMilliseconds())
        #expect(try stack.store.queue([unnamed]) == [.queued])
        #expect(try stack.ctl(["cancel", "unnamed"]).status == 0)
        let again = try stack.ctl(["retry", "unnamed"])
        #expect(again.status == 0, "\(again.stderr)")
        topics = try stack.topicPartitions()
        #expect(topics[stack.topic] == 8, "yadtq-run's default --partitions: \(topics)")
        #expect(topics[other] == 2)
    }

    @Test("a retry that cannot reach the broker leaves its tasks FAILED, saying why and what to do; the retry it names publishes them")
    func retryWithBrokerDown() throws {
        let stack = try IntegrationStack(label: "retrydown")
        let ids = ["down-1", "down-2"]
        let now = currentEpochMilliseconds()
        let tasks = ids.map { TaskMessage(id: $0, type: "add", args: [1, 2], maxAttempts: 3, queuedAt: now) }
        #expect(try stack.store.queue(tasks, topic: stack.topic) == [.queued, .queued])
        #expect(try stack.ctl(["cancel"] + ids).status == 0)

        // Nothing listens there: the topic's metadata cannot be read, and nothing is published.
        let down = try stack.ctl(["retry", "--json"] + ids, environment: ["YADTQ_BROKERS": "127.0.0.1:1"])
        #expect(down.status == 1, "\(down.stdout) \(down.stderr)")
        let lines = try down.stdout.split(separator: "\n").map { try JSONValue(parsing: String($0)) }
        #expect(lines.map { $0["id"] } == ids.map { .string($0) }, "one line per task: \(down.stdout) \(down.stderr)")
        let records = try stack.records(ids)
        for (id, (line, record)) in zip(ids, zip(lines, records)) {
            #expect(line["status"] == "FAILED" && line["changed"] == .bool(false), "\(line)")
            let reason = try #require(line["error"]?.stringValue, "\(line)")
            #expect(reason.hasPrefix("could not be published to \(stack.topic): "), "\(reason)")
            #expect(reason.contains("cannot read the metadata of topic \(stack.topic)"), "what happened: \(reason)")
            #expect(reason.hasSuffix("yadtq-ctl retry \(id)"), "what to do: \(reason)")
            #expect(record?.status == .failed && record?.error == reason, "\(String(describing: record))")
        }

        let again = try stack.ctl(["retry"] + ids)
        #expect(again.status == 0, "the retry the error names works: \(again.stdout) \(again.stderr)")
        #expect(again.stdout == ids.map { "\($0): -> QUEUED, published again\n" }.joined(), "\(again.stdout)")
        let published = try stack.readTopic(stack.topic, expecting: 2)
        #expect(ids.allSatisfy { id in published.contains { $0.contains(id) } }, "\(published)")
    }

    @Test("a retry publishes the tasks of every topic it can; those of a topic that cannot be written end FAILED, saying why")
    func retryPastATopicThatCannotBeWritten() throws {
        let stack = try IntegrationStack(label: "retrymixed")
        // A name longer than librdkafka takes (512 bytes): it refuses a handle for the topic, so
        // its tasks cannot be published. It sorts between the other two topics of the retry.
        let topics = [stack.topic, stack.topic + "-" + String(repeating: "x", count: 600), stack.topic + "-z"]
        let now = currentEpochMilliseconds()
        for (number, topic) in topics.enumerated() {
            let task = TaskMessage(id: "mixed-\(number)", type: "add", args: [1, 2], maxAttempts: 3, queuedAt: now)
            #expect(try stack.store.queue([task], topic: topic) == [.queued])
        }
        let ids = topics.indices.map { "mixed-\($0)" }
        #expect(try stack.ctl(["cancel"] + ids).status == 0)

        let retry = try stack.ctl(["retry", "--cancelled"])
        #expect(retry.status == 1, "\(retry.stdout) \(retry.stderr)")
        #expect(retry.stdout.contains("mixed-0: -> QUEUED, published again"), "\(retry.stdout) \(retry.stderr)")
        #expect(retry.stdout.contains("mixed-2: -> QUEUED, published again"), "\(retry.stdout) \(retry.stderr)")
        #expect(retry.stderr.contains("mixed-1: queued again, but could not be published to \(topics[1])"), "\(retry.stderr)")
        #expect(retry.stderr.contains("yadtq-ctl retry mixed-1; it is FAILED again"), "\(retry.stderr)")
        let records = try stack.records(ids)
        #expect(records.map { $0?.status } == [.queued, .failed, .queued], "\(records)")
        #expect(records[1]?.error?.contains("cannot create a handle for topic") == true, "\(String(describing: records[1]))")
        #expect(try stack.readTopic(topics[0], expecting: 1).first?.contains("mixed-0") == true)
        #expect(try stack.readTopic(topics[2], expecting: 1).first?.contains("mixed-2") == true)
    }

    @Test("a PROCESSING task with a cancel request ends CANCELLED instead of being tried again")
    func cancelProcessing() throws {
        let stack = try IntegrationStack(
            label: "cancelrun", extraPlugins: ["broken": #"return function(args) error("always broken") end"#])
        // 10 s to its next attempt: room for the cancel on a busy machine.
        let worker = try stack.startWorker("w1", arguments: ["--retry-delay", "10s", "--retry-max-delay", "10s"])
        defer { if worker.isRunning { worker.terminate() } }
        #expect(try stack.run(input: #"{"id": "p1", "type": "broken", "args": [], "max_attempts": 5}"# + "\n").status == 0)
        let deadline = ContinuousClock.now + .seconds(30)
        while try stack.store.record(id: "p1")?.errors.isEmpty ?? true, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(try stack.store.record(id: "p1")?.errors.count == 1, "its first attempt failed")
        let cancel = try stack.ctl(["cancel", "p1"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.stdout.contains("p1: PROCESSING, cancel requested"), "\(cancel.stdout)")
        let done = try stack.waitForTerminal(["p1"], timeout: .seconds(30))[0]
        #expect(done?.status == .cancelled)
        #expect(done?.attempts == 1, "the attempt waiting for its retry never ran")
        #expect(done?.errors.count == 1)
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 0, .failed: 0, .cancelled: 1])
    }

    @Test("cancelling a running task stops it within a second, busy or asleep; the worker goes on with the next")
    func cancelRunning() throws {
        let stack = try IntegrationStack(
            label: "cancelstop",
            extraPlugins: [
                "spin": "return function(args) while true do end end",
                "nap": "return function(args, task) task.sleep(60) end",
            ])
        let worker = try stack.startWorker("w1", arguments: ["--timeout", "60s", "--metrics-port", "0"])
        defer { WebServerProcess.terminate(worker) }
        let store = stack.store
        for (id, type) in [("spin-1", "spin"), ("nap-1", "nap")] {
            // One at a time: a batch's outcomes are written together, when all of its attempts are done.
            #expect(try stack.run(input: #"{"id": "\#(id)", "type": "\#(type)", "args": [], "max_attempts": 3}"# + "\n").status == 0)
            let running = ContinuousClock.now + .seconds(30)
            while try store.record(id: id)?.status != .processing, ContinuousClock.now < running {
                Thread.sleep(forTimeInterval: 0.05)
            }
            Thread.sleep(forTimeInterval: 0.3)  // well into its attempt
            let cancel = try stack.ctl(["cancel", id])
            // Timed from the stored request (yadtq-ctl has exited), not from its process's start.
            let asked = ContinuousClock.now
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(cancel.stdout.contains("\(id): PROCESSING, cancel requested"), "\(cancel.stdout)")
            var record = try store.record(id: id)
            while record?.status == .processing, ContinuousClock.now - asked < .seconds(10) {
                Thread.sleep(forTimeInterval: 0.02)
                record = try store.record(id: id)
            }
            let took = ContinuousClock.now - asked
            #expect(record?.status == .cancelled)
            #expect(took < .milliseconds(1500), "\(id) took \(took) to end CANCELLED")
            #expect(record?.attempts == 1, "a cancelled attempt is not retried")
            #expect(record?.errors.map(\.error) == ["cancelled while running: stopped by an operator's cancel request"])
        }
        #expect(try stack.run(input: #"{"id": "after", "type": "add", "args": [1, 2]}"# + "\n").status == 0)
        let after = try stack.waitForTerminal(["after"], timeout: .seconds(30))[0]
        #expect(after?.status == .success && after?.result == .int(3))
        #expect(try store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 1, .failed: 0, .cancelled: 2])

        let beat = try #require(try store.workerHeartbeats().first { $0.name == "w1" }?.heartbeat)
        let port = try #require(beat.metricsPort, "no metrics_port in \(beat)")
        let metrics = try ObservabilityTests.samples(try ObservabilityTests.curl("http://127.0.0.1:\(port)/metrics"))
        for type in ["spin", "nap"] {
            #expect(ObservabilityTests.value(metrics, "yadtq_worker_tasks_total", ["type": type, "outcome": "cancelled"]) == 1)
        }
        // The stopped attempts' offsets were committed like any terminal task's: no lag is left.
        var lag: JSONValue?
        let committed = ContinuousClock.now + .seconds(15)
        repeat {
            let monitor = try stack.runCommand("yadtq-monitor", arguments: ["--once", "--json", "--topic", stack.topic], input: [])
            lag = try JSONValue(parsing: monitor.stdout)["lag"]?["total"]
            if lag != .int(0) { Thread.sleep(forTimeInterval: 0.5) }
        } while lag != .int(0) && ContinuousClock.now < committed
        #expect(lag == .int(0))
    }

    @Test("POST /api/tasks/{id}/cancel and /retry answer 200, 404 and 409")
    func webEndpoints() throws {
        let stack = try IntegrationStack(label: "opweb")
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }
        #expect(try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2], "id": "w1"}"#).status == 202)
        #expect(try server.send("GET", "/tasks/w1").body.contains(">Cancel</button>"), "a QUEUED task's page offers Cancel")
        let cancel = try server.send("POST", "/api/tasks/w1/cancel")
        #expect(cancel.status == 200, "\(cancel.body)")
        #expect(cancel.json?["status"]?.stringValue == "CANCELLED")
        #expect(try server.send("POST", "/api/tasks/w1/cancel").status == 409)
        #expect(try server.send("POST", "/api/tasks/nope/cancel").status == 404)
        #expect(try server.send("POST", "/api/tasks/nope/retry").status == 404)
        #expect(try server.send("GET", "/tasks/w1").body.contains(">Retry</button>"), "a CANCELLED task's page offers Retry")
        let retry = try server.send("POST", "/api/tasks/w1/retry")
        #expect(retry.status == 200, "\(retry.body)")
        #expect(retry.json?["status"]?.stringValue == "QUEUED")
        #expect(try server.send("POST", "/api/tasks/w1/retry").status == 409)
        let counts = try server.send("GET", "/api/tasks?status=CANCELLED")
        #expect(counts.status == 200)
        #expect(counts.json?["counts"]?["CANCELLED"] == 0)
        #expect(counts.json?["counts"]?["QUEUED"] == 1)
    }

    @Test("POST /api/tasks/retry re-queues the tasks a filter takes; a bad filter is a 400 that changes nothing; Retry all on the list")
    func webBulkRetry() throws {
        let stack = try IntegrationStack(
            label: "bulkretry",
            extraPlugins: [
                "broken": #"return function(args) error("broken for now") end"#,
                "other": #"return function(args) error("other is broken too") end"#,
            ])
        let worker = try stack.startWorker("w1")
        defer { WebServerProcess.terminate(worker) }
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }
        let tasks = ["b1", "b2", "b3"].map { #"{"id": "\#($0)", "type": "broken", "args": [], "max_attempts": 1}"# }
            + [#"{"id": "o1", "type": "other", "args": [], "max_attempts": 1}"#]
        #expect(try stack.run(input: tasks.joined(separator: "\n") + "\n").status == 0)
        _ = try stack.waitForTerminal(["b1", "b2", "b3", "o1"], timeout: .seconds(30))
        #expect(try stack.ctl(["cancel", "b3"]).status == 1, "b3 is FAILED already")
        #expect(try stack.store.counts()[.failed] == 4)

        let bad: [(body: String, says: String)] = [
            (#"{"status": "SUCCESS"}"#, "only FAILED or CANCELLED tasks can be retried"),
            (#"{"type": "broken"}"#, "name the status to retry"),
            (#"{"status": "FAILED", "since": "soon"}"#, "since 'soon' is not a duration"),
            (#"{"status": "FAILED", "since": -5}"#, "since must be a positive duration"),
            (#"{"status": "FAILED", "typ": "broken"}"#, "unknown filter field 'typ'"),
            (#"{"status": "FAILED", "type": "no such/type"}"#, "is not a task type name"),
            (#"["FAILED"]"#, "send the filter as a JSON object"),
            ("status=FAILED", "not valid JSON"),
        ]
        for (body, says) in bad {
            let answer = try server.send("POST", "/api/tasks/retry", json: body)
            #expect(answer.status == 400, "\(body): \(answer.status) \(answer.body)")
            #expect(answer.error?.contains(says) == true, "\(body): \(answer.body)")
        }
        #expect(try server.send("POST", "/api/tasks/retry", body: #"{"status": "FAILED"}"#).status == 415)
        #expect(try stack.store.counts()[.failed] == 4, "a bad filter changes nothing")

        #expect(try server.send("GET", "/tasks?status=FAILED").body.contains(">Retry all</button>"))
        #expect(!(try server.send("GET", "/tasks?status=SUCCESS").body.contains(">Retry all</button>")))
        #expect(!(try server.send("GET", "/tasks?status=CANCELLED").body.contains(">Retry all</button>")), "none to retry")

        try Data(#"return function(args) return "fixed" end"#.utf8)
            .write(to: URL(fileURLWithPath: stack.pluginsDirectory).appendingPathComponent("broken.lua"))
        Thread.sleep(forTimeInterval: 3)  // workers reload plugins every second
        let retry = try server.send("POST", "/api/tasks/retry", json: #"{"status": "failed", "type": "broken", "since": "1h"}"#)
        #expect(retry.status == 200, "\(retry.body)")
        #expect(retry.json?["matched"] == 3 && retry.json?["requeued"] == 3 && retry.json?["more"] == false, "\(retry.body)")
        #expect(Set(retry.json?["tasks"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []) == ["b1", "b2", "b3"])
        #expect(retry.json?["tasks"]?[0]?["change"] == "requeued" && retry.json?["tasks"]?[0]?["status"] == "QUEUED")
        let done = try stack.waitForTerminal(["b1", "b2", "b3", "o1"], timeout: .seconds(30))
        #expect(done.map { $0?.status } == [.success, .success, .success, .failed])
        let again = try server.send("POST", "/api/tasks/retry", json: #"{"status": "FAILED", "type": "broken"}"#)
        #expect(again.status == 200 && again.json?["matched"] == 0, "\(again.body)")

        // The list's "Retry all" button: the same rule, through the page's form.
        try Data(#"return function(args) return "also fixed" end"#.utf8)
            .write(to: URL(fileURLWithPath: stack.pluginsDirectory).appendingPathComponent("other.lua"))
        Thread.sleep(forTimeInterval: 3)
        let jar = try server.cookieJar()
        let list = try server.send("GET", "/tasks?status=FAILED&type=other", cookies: jar)
        let csrf = try #require(list.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
        let form = ["Content-Type: application/x-www-form-urlencoded", "Origin: \(server.base)"]
        let posted = try server.send(
            "POST", "/tasks/retry", body: "csrf=\(csrf)&status=FAILED&type=other", headers: form, cookies: jar)
        #expect(posted.status == 303, "\(posted.status) \(posted.body)")
        #expect(posted.headers["location"]?.contains("retried=1") == true, "\(posted.headers)")
        #expect(try server.send("GET", posted.headers["location"] ?? "/", cookies: jar).body.contains("1 tasks queued again"))
        #expect(try stack.waitForTerminal(["o1"], timeout: .seconds(30))[0]?.result == .string("also fixed"))
    }

    @Test("a bulk retry owing its answer by a deadline takes the chunks that fit before it and says more match; the next takes the rest, each task once")
    func bulkRetryPaced() throws {
        let stack = try IntegrationStack(label: "bulkpaced")
        let now = currentEpochMilliseconds()
        let ids = (0..<2_500).map { "paced-\($0)" }
        let tasks = ids.map { TaskMessage(id: $0, type: "add", args: [1, 2], maxAttempts: 3, queuedAt: now) }
        _ = try stack.store.queue(tasks, topic: stack.topic)
        let cancelled = try stack.store.cancel(ids, at: now + 1)
        #expect(cancelled.allSatisfy { $0 == .cancelled(from: .queued) })
        let publisher = try TaskPublisher(
            settings: stack.settings, topic: stack.topic, partitions: 4, clientID: "bulkpaced", logger: stack.logger)
        let filter = try RetryFilter(status: .cancelled)

        // The deadline has passed: the first chunk runs (each request gets on), no other.
        let first = try publisher.retry(matching: filter, pacing: BulkRetryPacing(deadline: .now))
        #expect(first.ids.count == TaskPublisher.retryChunkSize && first.more, "\(first.ids.count) \(first.more)")
        #expect(first.changes.count == first.ids.count && first.changes.allSatisfy { $0 == .requeued })
        let afterFirst = try stack.store.counts()
        #expect(afterFirst[.queued] == 1_000 && afterFirst[.cancelled] == 1_500, "\(afterFirst)")

        let rest = try publisher.retry(matching: filter, pacing: BulkRetryPacing(deadline: .now + .seconds(120)))
        #expect(rest.ids.count == 1_500 && !rest.more, "\(rest.ids.count) \(rest.more)")
        #expect(rest.changes.allSatisfy { $0 == .requeued })
        #expect(Set(first.ids + rest.ids) == Set(ids), "every task retried, none twice")
        let afterRest = try stack.store.counts()
        #expect(afterRest[.queued] == 2_500 && afterRest[.cancelled] == 0, "\(afterRest)")
        let published = try stack.readTopic(stack.topic, expecting: 2_500)
        #expect(published.count == 2_500 && published.allSatisfy { $0.contains("paced-") })
    }

    @Test("records an earlier build wrote (version 2) read the same, run, fail and are retried to the end")
    func versionTwoRecords() throws {
        let stack = try IntegrationStack(
            label: "v2",
            extraPlugins: ["flaky": #"return function(args, task) task.log("tried") error("flaky is broken") end"#])
        let ids = ["r1", "q1", "q2"]
        let tasks = """
            {"id": "r1", "type": "flaky", "args": [], "max_attempts": 2}
            {"id": "q1", "type": "add", "args": [1, 2]}
            {"id": "q2", "type": "add", "args": [3, 4], "max_attempts": 1}
            """
        #expect(try stack.run(input: tasks + "\n").status == 0)
        let queued = try stack.records(ids)
        #expect(queued.map { $0?.status } == [.queued, .queued, .queued])
        for id in ids { try RecordBytes.rewriteAsVersionTwo(id, in: stack) }
        #expect(try stack.records(ids) == queued, "a QUEUED record of version 2 reads as it did")

        let worker = try stack.startWorker("w1", arguments: ["--retry-delay", "10ms"])
        defer { if worker.isRunning { worker.terminate() } }
        let finished = try stack.waitForTerminal(ids, timeout: .seconds(30))
        #expect(finished.map { $0?.status } == [.failed, .success, .success])
        #expect(finished[0]?.errors.map(\.attempt) == [1, 2])
        // Logs are not in the outside view: read through the store.
        let failed = try stack.store.record(id: "r1")
        #expect(failed?.logs == ["tried", "tried"])
        #expect(finished[1]?.result == 3 && finished[2]?.result == 7)
        #expect(try RecordBytes.version(of: "q1", in: stack) == 3, "the scripts write their own version")

        try RecordBytes.rewriteAsVersionTwo("r1", in: stack)
        #expect(try RecordBytes.version(of: "r1", in: stack) == 2)
        #expect(try stack.records(["r1"]) == [finished[0]], "a FAILED record of version 2 reads as it did")
        #expect(try stack.store.record(id: "r1") == failed, "its errors and logs too")
        try Data(#"return function(args) return "fixed" end"#.utf8)
            .write(to: URL(fileURLWithPath: stack.pluginsDirectory).appendingPathComponent("flaky.lua"))
        Thread.sleep(forTimeInterval: 3)  // workers reload plugins every second
        let retry = try stack.ctl(["retry", "r1"])
        #expect(retry.status == 0, "\(retry.stderr)")
        let done = try stack.waitForTerminal(["r1"], timeout: .seconds(30))[0]
        #expect(done?.status == .success && done?.result == .string("fixed"))
        #expect(done?.errors.map(\.attempt) == [1, 2], "the earlier errors are kept")
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 3, .failed: 0, .cancelled: 0])
    }
}

/// A task's packed record as the scripts store it, read and written with `redis-cli`, so
/// a test can put there what an earlier build wrote.
private enum RecordBytes {
    static func version(of id: String, in stack: IntegrationStack) throws -> UInt8? {
        try read(id, in: stack).first
    }

    /// Rewrites the record of `id` from version 3 to version 2: the same header, the tail's
    /// four times (0 without a tail), then worker, result, the tail's four strings (empty
    /// without a tail), type, args and topic.
    static func rewriteAsVersionTwo(_ id: String, in stack: IntegrationStack) throws {
        let record = try read(id, in: stack)
        try #require(record.first == 3, "a record of version 3: \(record.prefix(2))")
        let headerEnd = 62
        var offset = headerEnd
        func string() -> [UInt8] {
            let length = record[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            defer { offset += 4 + length }
            return Array(record[offset..<offset + 4 + length])
        }
        let strings = (0..<5).map { _ in string() }
        var times = [UInt8](repeating: 0, count: 32)
        var tailStrings = [[UInt8]](repeating: [0, 0, 0, 0], count: 4)
        if offset < record.count {
            times = Array(record[offset..<offset + 32])
            offset += 32
            tailStrings = (0..<4).map { _ in string() }
        }
        try #require(offset == record.count)
        let rewritten = [2] + record[1..<headerEnd] + times + strings[0] + strings[1] + tailStrings.joined()
            + strings[2] + strings[3] + strings[4]
        _ = try cli(["-x", "HSET", stack.store.keys.records(of: id), id], input: Data(rewritten), in: stack)
    }

    private static func read(_ id: String, in stack: IntegrationStack) throws -> [UInt8] {
        // --raw prints the value as it is, then a newline.
        Array(try cli(["--raw", "HGET", stack.store.keys.records(of: id), id], in: stack).dropLast())
    }

    private static func cli(_ arguments: [String], input: Data = Data(), in stack: IntegrationStack) throws -> Data {
        let redis = stack.settings.redis
        let node = try #require(redis.nodes.first)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["redis-cli", "-c", "-h", node.host, "-p", String(node.port), "-n", String(redis.database)]
            + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REDISCLI_AUTH"] = redis.password
        process.environment = environment
        let (stdin, stdout) = (Pipe(), Pipe())
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "redis-cli \(arguments.joined(separator: " ")) failed")
        return output
    }
}
