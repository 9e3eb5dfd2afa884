import Foundation
import Testing
import YADTQCore

/// Hot reload under a running worker: add, change, break and remove a plugin file.
@Suite("Plugin hot reload", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"))
struct PluginReloadTests {
    /// Waits until the worker has published a plugin list that satisfies `ready`;
    /// returns how long that took.
    func waitForRegistry(
        _ stack: IntegrationStack, worker: String, _ ready: ([PluginInfo]) -> Bool
    ) throws -> Duration {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .seconds(15) {
            if let plugins = try stack.store.publishedPlugins()[worker], ready(plugins) {
                return ContinuousClock.now - start
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        Issue.record("worker \(worker) did not publish the expected plugin list")
        return ContinuousClock.now - start
    }

    func runOne(_ stack: IntegrationStack, _ line: String, id: String) throws -> TaskRecord {
        let run = try stack.run(input: #"{"id": "\#(id)", \#(line)}"# + "\n")
        #expect(run.status == 0, "\(run.stderr)")
        return try #require(try stack.waitForTerminal([id], timeout: .seconds(30))[0])
    }

    @Test("a dropped, changed, broken and removed plugin takes effect under a running worker")
    func hotReload() throws {
        let stack = try IntegrationStack()
        let file = URL(fileURLWithPath: stack.pluginsDirectory).appendingPathComponent("triple.lua")
        let worker = try stack.startWorker("w1")
        defer { if worker.isRunning { worker.terminate() } }
        #expect(try runOne(stack, #""type": "add", "args": [1, 2]"#, id: "warm-up").result == .int(3))

        try Data(#"return { description = "v1", run = function(a) return a[1] * 3 end }"#.utf8).write(to: file)
        let added = try waitForRegistry(stack, worker: "w1") { $0.contains { $0.type == "triple" } }
        print("hot reload: plugin dropped -> registered by the worker in \(added)")
        #expect(try runOne(stack, #""type": "triple", "args": [5]"#, id: "t1").result == .int(15))

        try Data(#"return { description = "v2", run = function(a) return a[1] * 4 end }"#.utf8).write(to: file)
        _ = try waitForRegistry(stack, worker: "w1") { $0.contains { $0.type == "triple" && $0.description == "v2" } }
        #expect(try runOne(stack, #""type": "triple", "args": [5]"#, id: "t2").result == .int(20))

        try Data("return function(a)\n  return a[1] *\nend\n".utf8).write(to: file)
        _ = try waitForRegistry(stack, worker: "w1") { $0.contains { $0.type == "triple" && $0.loadError != nil } }
        let broken = try runOne(stack, #""type": "triple", "args": [5]"#, id: "t3")
        #expect(broken.status == .failed)
        #expect(broken.attempts == 1, "a plugin that does not load fails its tasks at once")
        #expect(broken.error?.contains("triple.lua:3") == true, "\(broken.error ?? "")")

        try FileManager.default.removeItem(at: file)
        _ = try waitForRegistry(stack, worker: "w1") { !$0.contains { $0.type == "triple" } }
        let removed = try runOne(stack, #""type": "triple", "args": [5]"#, id: "t4")
        #expect(removed.status == .failed && removed.error?.contains("triple") == true)

        #expect(try runOne(stack, #""type": "add", "args": [2, 3]"#, id: "still-serving").result == .int(5))
        #expect(worker.isRunning)
    }

    @Test("yadtq-worker --check lists the plugins and fails on a broken one")
    func check() throws {
        let good = try IntegrationStack()
        let ok = try runWorkerCheck(good, directory: good.pluginsDirectory)
        #expect(ok.status == 0)
        #expect(ok.output.contains("add") && ok.output.contains("ok"))
        let bad = try IntegrationStack(extraPlugins: ["oops": "return function( end"])
        let failed = try runWorkerCheck(bad, directory: bad.pluginsDirectory)
        #expect(failed.status == 1)
        #expect(failed.output.contains("oops") && failed.output.contains("ERROR") && failed.output.contains("oops.lua:1"))
    }

    private func runWorkerCheck(_ stack: IntegrationStack, directory: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: stack.binDirectory + "/yadtq-worker")
        process.arguments = ["--check", directory]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
