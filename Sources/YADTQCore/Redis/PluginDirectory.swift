import Foundation

extension TaskStore {
    /// Publishes the task types a worker can run, with their metadata and load errors,
    /// as `<prefix>plugins` field `<worker>` = JSON array of ``PluginInfo``.
    public func publishPlugins(_ plugins: [PluginInfo], worker: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(plugins), as: UTF8.self)
        _ = try client.execute(RedisCommand("HSET", keys.plugins, worker, text), or: "Writing the plugin list of \(worker)")
    }

    /// Every worker's published plugins, by worker name.
    public func publishedPlugins() throws -> [String: [PluginInfo]] {
        let elements = try client.execute(RedisCommand("HGETALL", keys.plugins), or: "Reading the plugin lists").elements
        var result: [String: [PluginInfo]] = [:]
        for index in stride(from: 0, to: elements.count - 1, by: 2) {
            guard let worker = elements[index].text, case .string(let bytes) = elements[index + 1],
                let plugins = try? JSONDecoder().decode([PluginInfo].self, from: Data(bytes))
            else { continue }
            result[worker] = plugins
        }
        return result
    }
}
