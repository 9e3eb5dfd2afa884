import Foundation
import Testing
import YADTQCore

/// A temporary plugin folder with a registry and an executor on it, removed at deinit.
final class PluginFolder {
    let path: String
    let registry: PluginRegistry
    let executor: PluginExecutor

    /// Short limits by default, so hostile plugins fail fast.
    static let testLimits = PluginLimits(timeout: .milliseconds(200), memoryBytes: 16 << 20)

    init(_ files: [String: String] = [:], limits: PluginLimits = PluginFolder.testLimits, loadLimits: PluginLimits = PluginLimits(timeout: .seconds(1))) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-plugins-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, source) in files { try Self.write(source, to: (path as NSString).appendingPathComponent(name)) }
        registry = PluginRegistry(directory: path, loadLimits: loadLimits)
        executor = PluginExecutor(registry: registry, limits: limits)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes a plugin file the way an editor or `cp` would, replacing any previous one.
    func write(_ name: String, _ source: String) throws {
        try Self.write(source, to: (path as NSString).appendingPathComponent(name))
    }

    func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: (path as NSString).appendingPathComponent(name))
    }

    func run(_ type: String, _ args: [JSONValue] = [], id: String = "t-1", attempt: Int = 1, maxAttempts: Int = 3) -> PluginOutcome {
        executor.execute(type: type, args: args, context: TaskContext(id: id, attempt: attempt, maxAttempts: maxAttempts))
    }

    private static func write(_ source: String, to path: String) throws {
        try Data(source.utf8).write(to: URL(fileURLWithPath: path))
    }
}

/// The repository's `plugins` folder.
let bundledPluginsPath = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("plugins").path

extension PluginOutcome {
    var value: JSONValue? {
        if case .success(let value, _, _) = self { value } else { nil }
    }

    var failure: PluginFailure? {
        if case .failure(let failure, _, _) = self { failure } else { nil }
    }
}

/// The source of a plugin whose `run` body is `body`.
func plugin(_ body: String) -> String {
    "return function(args, task)\n\(body)\nend\n"
}

/// A plugin body that keeps Lua's collector busy for seconds inside one step no hook reaches:
/// tables with weak keys are walked again and again until no more values turn out reachable, and
/// entries chained so that each value is the next one's key, in an order the walk does not follow,
/// make that time quadratic in the chain (40,000 entries: about 8 s in plain Lua on the test
/// machine). Then it makes garbage until the collector runs.
let weakKeyChainBody = """
    local weak, nodes = setmetatable({}, {__mode = "k"}), {}
    for i = 1, 40000 do nodes[i] = {} end
    for i = #nodes, 2, -1 do local j = math.random(i) nodes[i], nodes[j] = nodes[j], nodes[i] end
    for i = 1, #nodes - 1 do weak[nodes[i]] = nodes[i + 1] end
    local first = nodes[1]
    nodes = nil
    while true do local garbage = {} end
    """
