import Foundation
import Testing
import YADTQCore

/// Metadata, load errors and hot reload.
@Suite("Plugin registry")
struct PluginRegistryTests {
    @Test func readsMetadataWithoutRunningTasks() throws {
        let folder = try PluginFolder([
            "meta.lua": """
                task_ran = false
                return {
                  description = "Does things", timeout = 2.5, max_attempts = 4, args = "x: number",
                  run = function() error("must not run while loading") end,
                }
                """,
            "bare.lua": plugin("return 1"),
        ])
        #expect(folder.registry.info(for: "meta") == PluginInfo(type: "meta", file: "meta.lua", description: "Does things", timeoutSeconds: 2.5, maxAttempts: 4, args: "x: number"))
        #expect(folder.registry.info(for: "bare") == PluginInfo(type: "bare", file: "bare.lua"))
        #expect(folder.registry.plugins.map(\.type) == ["bare", "meta"])
        #expect(folder.registry.info(for: "missing") == nil)
    }

    @Test(arguments: [
        ("syntax.lua", "return function(\n  x = = 1\nend\n", 2, "')' expected near '='"),
        ("toplevel.lua", "local x = nil\nreturn x.y\n", 2, "attempt to index a nil value (local 'x')"),
        ("meta.lua", "return {run = print, max_attempts = 0}", nil, "'max_attempts' must be an integer from 1 to 100, not 0"),
        // A task message with more attempts than that does not decode: every task of the type would fail.
        ("many.lua", "return {run = print, max_attempts = 1000}", nil, "'max_attempts' must be an integer from 1 to 100, not 1000"),
        ("half.lua", "return {run = print, max_attempts = 2.5}", nil, "'max_attempts' must be an integer from 1 to 100, not 2.5"),
        ("word.lua", "return {run = print, max_attempts = 'three'}", nil, "'max_attempts' must be an integer, not string"),
        ("desc.lua", "return {run = print, description = 42}", nil, "'description' must be a string, not number"),
        ("long.lua", "return {run = print, description = string.rep('x', 4097)}", nil, "'description' is 4097 bytes, more than the 4096 allowed"),
        ("wide.lua", "return {run = print, args = string.rep('x', 5000)}", nil, "'args' is 5000 bytes, more than the 4096 allowed"),
        ("spin.lua", "while true do end", nil, "timeout after 1s"),
        ("handler.lua", "xpcall(function() while true do end end, function() while true do end end)", nil, "its top level did not finish: timeout after 1s"),
        ("hoard.lua", "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 65536) .. i end", nil, "memory limit (64 MiB) exceeded"),
        ("bad name.lua", "return print", nil, "'bad name' is not a valid task type"),
    ] as [(String, String, Int?, String)])
    func loadErrorsAreReportedAndFailTasks(_ file: String, _ source: String, _ line: Int?, _ message: String) throws {
        let folder = try PluginFolder([file: source, "ok.lua": plugin("return 'ok'")])
        let type = String(file.dropLast(4))
        let error = try #require(folder.registry.info(for: type)?.loadError)
        #expect(error.file == file)
        #expect(error.line == line)
        #expect(error.message.contains(message), "\(error.message)")
        let failure = try #require(folder.run(type).failure)
        #expect(failure.isPermanent)
        #expect(failure.message.contains("plugin \(file) does not load: \(error)"), "\(failure.message)")
        #expect(folder.run("ok").value == .string("ok"))
    }

    @Test func metadataTextsUpToTheirCapLoad() throws {
        let folder = try PluginFolder(["edge.lua": "return {run = print, description = string.rep('d', 4096), args = string.rep('a', 4096)}"])
        let info = try #require(folder.registry.info(for: "edge"))
        #expect(info.loadError == nil)
        #expect(info.description?.utf8.count == 4096 && info.args?.utf8.count == 4096)
    }

    @Test func hotReload() throws {
        let folder = try PluginFolder()
        #expect(folder.registry.plugins.isEmpty)
        #expect(folder.run("x").failure?.isPermanent == true)
        #expect(!folder.registry.refresh())

        try folder.write("x.lua", plugin("return 'first'"))
        #expect(folder.registry.refresh())
        #expect(folder.run("x").value == .string("first"))
        #expect(!folder.registry.refresh())

        let generation = folder.registry.generation
        try folder.write("x.lua", plugin("return 'second version'"))
        #expect(folder.registry.refresh())
        #expect(folder.registry.generation > generation)
        #expect(folder.run("x").value == .string("second version"))

        try folder.write("x.lua", plugin("return 'broken' +"))
        #expect(folder.registry.refresh())
        #expect(folder.registry.info(for: "x")?.loadError?.line == 3)
        #expect(folder.run("x").failure?.message.contains("x.lua:3:") == true)

        try folder.write("x.lua", plugin("return 'fixed again, longer'"))
        folder.registry.refresh()
        #expect(folder.run("x").value == .string("fixed again, longer"))

        try folder.remove("x.lua")
        #expect(folder.registry.refresh())
        #expect(folder.registry.info(for: "x") == nil)
        #expect(folder.run("x").failure?.isPermanent == true)
    }

    @Test func executorsFollowTheRegistryIndependently() throws {
        let folder = try PluginFolder(["v.lua": plugin("return 1")])
        let other = PluginExecutor(registry: folder.registry, limits: PluginFolder.testLimits)
        let context = TaskContext(id: "t", attempt: 1, maxAttempts: 1)
        #expect(other.execute(type: "v", args: [], context: context).value == .int(1))
        try folder.write("v.lua", plugin("return 22"))
        folder.registry.refresh()
        #expect(folder.run("v").value == .int(22))
        #expect(other.execute(type: "v", args: [], context: context).value == .int(22))
    }

    @Test func ignoresHiddenAndOtherFiles() throws {
        let folder = try PluginFolder([".#x.lua": "junk", "notes.txt": "hello", "y.lua": plugin("return 1")])
        #expect(folder.registry.plugins.map(\.type) == ["y"])
    }

    @Test func missingFolderIsReported() {
        let registry = PluginRegistry(directory: "/nonexistent/yadtq-plugins")
        #expect(registry.plugins.isEmpty)
        #expect(registry.scanError?.contains("/nonexistent/yadtq-plugins") == true)
    }

    /// A load error of megabytes is cut to a few KiB, as valid UTF-8 with a note, before it
    /// reaches the log, the plugin list in Redis and the error of each task of the type.
    @Test(arguments: [
        ("raise.lua", "error(string.rep('x', 10000000))", "xxxx"),
        ("every.lua", "return {run = print, every = string.rep('x', 10000000)}", "'every' must be a duration"),
        ("cron.lua", "return {run = print, cron = '* * * * ' .. string.rep('x', 10000000)}", "'cron' day of week field"),
        ("wide.lua", "return {run = print, every = string.rep('\u{e9}', 5000000)}", "\u{e9}\u{e9}"),
        ("syntax.lua", "return 1 \"" + String(repeating: "x", count: 10_000_000) + "\"", "<eof> expected near"),
    ] as [(String, String, String)])
    func hugeLoadErrorsAreCut(_ file: String, _ source: String, _ start: String) throws {
        let folder = try PluginFolder([file: source])
        let info = try #require(folder.registry.info(for: String(file.dropLast(4))))
        let error = try #require(info.loadError)
        #expect(error.message.contains(start))
        #expect(error.message.utf8.count <= PluginLoadError.maximumMessageBytes, "\(error.message.utf8.count) bytes")
        #expect(error.message.contains("… [trimmed: ") && error.message.hasSuffix(" kept]"), "marked as cut")
        #expect(!error.message.contains("\u{FFFD}"), "no character cut in half")
        #expect(try JSONEncoder().encode(info).count <= PluginLoadError.maximumMessageBytes + 300, "the entry in the plugin list")
        let failure = try #require(folder.run(info.type).failure)
        #expect(failure.message.utf8.count <= PluginLoadError.maximumMessageBytes + 300, "\(failure.message.utf8.count) bytes")
    }

    @Test func pluginInfoIsCodable() throws {
        let info = PluginInfo(type: "x", file: "x.lua", loadError: PluginLoadError(file: "x.lua", line: 3, message: "oops"))
        let decoded = try JSONDecoder().decode(PluginInfo.self, from: JSONEncoder().encode(info))
        #expect(decoded == info)
        #expect(info.loadError?.description == "x.lua:3: oops")
    }

    @Test func taskTypeNames() {
        for name in ["add", "a_b", "v1.2", "x-y", "_x", "9", String(repeating: "a", count: 64)] {
            #expect(TaskDeclaration.isValidType(name), "\(name)")
        }
        for name in ["", "-x", ".x", "a b", "é", "a/b", String(repeating: "a", count: 65)] {
            #expect(!TaskDeclaration.isValidType(name), "\(name)")
        }
    }
}
