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

/// A plugin that keeps Lua's collector busy for seconds in one step no check reaches (see the
/// file), shared with the integration tests.
func weakKeyChainPlugin() throws -> String {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/weak_key_chain.lua").path
    return try String(contentsOfFile: path, encoding: .utf8)
}
