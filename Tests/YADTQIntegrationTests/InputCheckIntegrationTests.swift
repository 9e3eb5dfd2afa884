import Foundation
import Testing
import YADTQCore

/// Input the commands and the web API refuse rather than act on with a meaning its author did
/// not give it: repeated keys, integers beyond 64 bits, type filters that name no type, options
/// that do nothing alone, folders that hold no task file.
@Suite("Input checks", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct InputCheckIntegrationTests {
    @Test("the web API refuses a repeated key, a wide integer and a type filter that names no type, changing nothing")
    func web() throws {
        let stack = try IntegrationStack(label: "web-checks")
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }

        let twice = try server.send("POST", "/api/tasks", json: #"{"type":"add","type":"mul","id":"twice"}"#)
        #expect(twice.status == 400, "\(twice.body)")
        #expect(twice.error?.contains(#"key "type" appears twice"#) == true, "\(twice.body)")
        #expect(try stack.store.statuses(of: ["twice"]) == [nil])

        let wide = try server.send("POST", "/api/tasks", json: #"{"type":"add","args":[99999999999999999999999],"id":"wide"}"#)
        #expect(wide.status == 400, "\(wide.body)")
        #expect(wide.error == "argument 1 is an integer beyond 64 bits: pass it as a string", "\(wide.body)")
        #expect(try stack.store.statuses(of: ["wide"]) == [nil])

        let kept = try server.send("POST", "/api/tasks", json: #"{"type":"add","args":[1],"id":"kept"}"#)
        #expect(kept.status == 202, "\(kept.body)")
        #expect(try server.send("POST", "/api/tasks/kept/cancel").json?["status"] == "CANCELLED")
        let retry = try server.send("POST", "/api/tasks/retry", json: #"{"status":"CANCELLED","status":"FAILED"}"#)
        #expect(retry.status == 400, "\(retry.body)")
        #expect(retry.error?.contains(#"key "status" appears twice"#) == true, "\(retry.body)")
        #expect(try stack.store.statuses(of: ["kept"]) == [.cancelled], "nothing was requeued")

        let listing = try server.send("GET", "/api/tasks?type=a%20b")
        #expect(listing.status == 400)
        #expect(listing.error == "'a b' is not a task type name (a plugin file's name without .lua)", "\(listing.body)")
    }

    @Test("yadtq-ctl ls and purge refuse a --type that names no type; yadtq-run refuses --results alone and a folder without *.txt")
    func commands() throws {
        let stack = try IntegrationStack(label: "cli-checks")
        for arguments in [["ls", "--type", "a b"], ["purge", "--status", "FAILED", "--type", "x y", "--yes"]] {
            let outcome = try stack.ctl(arguments)
            #expect(outcome.status != 0, "\(arguments)")
            #expect(outcome.stderr.contains("is not a task type name"), "\(arguments): \(outcome.stderr)")
        }

        let results = try stack.run(input: "add 1 2\n", arguments: ["--results"])
        #expect(results.status != 0)
        #expect(results.stderr.contains("--results needs --wait"), "\(results.stderr)")
        #expect(results.stdout.isEmpty, "nothing was published")

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-notxt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["a.TXT", "b.tasks"] { try Data("add 1 2\n".utf8).write(to: folder.appendingPathComponent(name)) }
        let empty = try stack.run(input: "", arguments: [folder.path])
        #expect(empty.status == 1, "\(empty.stderr)")
        #expect(empty.stderr.contains("\(folder.path): no *.txt file in this folder (it holds a.TXT, b.tasks)"), "\(empty.stderr)")
        #expect(empty.stdout.isEmpty)

        let wide = try stack.run(input: "add 99999999999999999999999\n")
        #expect(wide.status == 1)
        #expect(wide.stderr.contains("argument 1 is an integer beyond 64 bits: pass it as a string"), "\(wide.stderr)")
        #expect(wide.stdout.isEmpty, "nothing was published")
    }
}
