import Foundation
import Testing
import YADTQCore

/// A worker and a broker that does not answer: frozen (`kill -STOP`: the connection stays open
/// and nothing answers) or not running. Each test has a broker of its own, so the tests running
/// beside it are not disturbed. The bounds given to the worker are bounds for a hang, never
/// timings: every wait of the worker on the broker has a limit of a few seconds.
@Suite("Broker outages", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct BrokerOutageTests {
    /// A worker on a 1-partition topic that has run two tasks, so it has offsets to commit
    /// when it leaves, sent SIGTERM once the broker is frozen (``ChaosStack/shutDown()`` thaws it).
    private func stoppingWithFrozenBroker(_ stack: ChaosStack) throws -> Process {
        let created = try stack.base.run(input: "", arguments: ["--partitions", "1"])
        #expect(created.status == 0, "\(created.stderr)")
        let worker = try stack.base.startWorker("w1")
        try stack.base.runSucceeding("add 1 2\nadd 3 4\n")
        kill(try stack.servicePID("tansu"), SIGSTOP)
        kill(worker.processIdentifier, SIGTERM)
        return worker
    }

    @Test("SIGTERM with the broker frozen: the worker gives up on the commit and on leaving the group, and exits 0")
    func stopWithFrozenBroker() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        let worker = try stoppingWithFrozenBroker(stack)
        let status = IntegrationStack.waitForExit(worker, timeout: .seconds(60))
        #expect(status == 0, "\(stack.base.workerLog("w1").suffix(3000))")
    }

    @Test("a second SIGTERM ends a stopping worker at once (exit 143), whatever it was waiting for")
    func secondSignalExits() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        let worker = try stoppingWithFrozenBroker(stack)
        // Two signals sent at once may arrive as one: the second follows the first's log line.
        #expect(try ChaosStack.waitUntil(.seconds(30)) { stack.base.workerLog("w1").contains("a second SIGTERM/SIGINT exits at once") })
        kill(worker.processIdentifier, SIGTERM)
        let status = IntegrationStack.waitForExit(worker, timeout: .seconds(60))
        #expect(status == 128 + SIGTERM, "\(stack.base.workerLog("w1").suffix(3000))")
        #expect(stack.base.workerLog("w1").contains("exiting at once"))
    }

    @Test("a worker started while the broker is down waits for it, its heartbeat saying so, then runs tasks once it is up")
    func workerWaitsForBroker() throws {
        let stack = try ChaosStack(privateServices: true)
        defer { stack.shutDown() }
        kill(try stack.servicePID("tansu"), SIGKILL)
        Thread.sleep(forTimeInterval: 1)
        let worker = try stack.base.startWorker("w1", arguments: ["--heartbeat-interval", "500ms"])
        #expect(
            try ChaosStack.waitUntil(.seconds(60)) { stack.base.workerLog("w1").contains("waiting for the broker at") },
            "\(stack.base.workerLog("w1").suffix(2000))")
        #expect(worker.isRunning, "the worker waits instead of exiting")
        let store = stack.store
        let beat = { try? store.heartbeats(of: ["w1"]).heartbeats["w1"] }
        #expect(
            ChaosStack.waitUntil(.seconds(30)) {
                beat()?.note == "waiting for the broker at \(stack.settings.brokers)" && beat()?.state == .waiting
            }, "\(String(describing: beat()))")
        try stack.startServices()
        try stack.base.runSucceeding("add 1 2\n", timeout: .seconds(90))
        #expect(ChaosStack.waitUntil(.seconds(30)) { beat().map { $0.note == nil } ?? false }, "\(String(describing: beat()))")
        #expect(ChaosStack.stop([worker]) == [0])
    }

    @Test("librdkafka's own lines go through the command's log: with --log-format json, a broker that cannot be reached gives JSON lines only")
    func libraryLinesFollowLogFormat() throws {
        let stack = try IntegrationStack(label: "rdlog")
        defer { try? FileManager.default.removeItem(atPath: stack.pluginsDirectory) }
        let outcome = try stack.runCommand(
            "yadtq-run", arguments: ["--topic", stack.topic, "--log-format", "json"], input: Array("add 1 2\n".utf8),
            environment: ["YADTQ_BROKERS": "127.0.0.1:1"])
        #expect(outcome.status != 0, "no broker answers")
        // The final `error: ...` line is the command's exit message, plain text by design.
        let lines = outcome.stderr.split(separator: "\n").filter { !$0.hasPrefix("error: ") }
        let records = lines.map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(records.allSatisfy { $0 != nil }, "not JSON: \(zip(lines, records).filter { $1 == nil }.prefix(3).map(\.0))")
        #expect(records.contains { $0?["librdkafka"] != nil }, "\(outcome.stderr.prefix(2000))")
    }
}
