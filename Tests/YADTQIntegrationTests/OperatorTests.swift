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

    @Test("a PROCESSING task with a cancel request ends CANCELLED instead of being tried again")
    func cancelProcessing() throws {
        let stack = try IntegrationStack(
            label: "cancelrun", extraPlugins: ["broken": #"return function(args) error("always broken") end"#])
        let worker = try stack.startWorker("w1", arguments: ["--retry-delay", "3s", "--retry-max-delay", "3s"])
        defer { if worker.isRunning { worker.terminate() } }
        #expect(try stack.run(input: #"{"id": "p1", "type": "broken", "args": [], "max_attempts": 5}"# + "\n").status == 0)
        let deadline = ContinuousClock.now + .seconds(30)
        while try stack.store.record(id: "p1")?.errors.isEmpty ?? true, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let cancel = try stack.ctl(["cancel", "p1"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.stdout.contains("p1: PROCESSING, cancel requested"), "\(cancel.stdout)")
        let done = try stack.waitForTerminal(["p1"], timeout: .seconds(30))[0]
        #expect(done?.status == .cancelled)
        #expect(done?.attempts == 1, "the attempt waiting for its retry never ran")
        #expect(done?.errors.count == 1)
        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 0, .failed: 0, .cancelled: 1])
    }

    @Test("POST /api/tasks/{id}/cancel and /retry answer 200, 404 and 409")
    func webEndpoints() throws {
        let stack = try IntegrationStack(label: "opweb")
        var server = try WebServerProcess(stack: stack)
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
}
