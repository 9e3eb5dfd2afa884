/// Whether the running workers of a topic can run a task type. A task whose type none of
/// them has a plugin for ends FAILED ("unknown task type"), and so does one whose plugin does
/// not load on them; a producer says so once per type, while there is still time to mend it
/// (workers pick up a plugin dropped into their folder within seconds).
///
/// Nothing is said when no worker of the topic runs (``TopicChoice`` says that), or when one
/// of them has not published its plugin list yet: then it is not known.
public struct PluginCoverage: Sendable {
    public let topic: String
    private struct Consumer: Sendable {
        var name: String
        /// By type.
        var plugins: [String: PluginInfo]
    }
    /// The topic's running workers, sorted, with the plugins each published.
    private let workers: [Consumer]

    /// - Parameters:
    ///   - heartbeats: the heartbeats in the namespace, which say who runs (see ``TopicChoice``).
    ///   - plugins: every worker's published plugin list (``TaskStore/publishedPlugins()``).
    public init(
        topic: String, group: String, heartbeats: [TaskStore.WorkerHeartbeat], plugins: [String: [PluginInfo]], now: Int64
    ) {
        self.topic = topic
        let names = TopicChoice.consumers(group: group, workers: heartbeats, now: now)[topic]?.sorted() ?? []
        var workers: [Consumer] = []
        for name in names {
            guard let list = plugins[name] else {
                // A worker that has not said what it runs: nothing can be told.
                self.workers = []
                return
            }
            workers.append(Consumer(name: name, plugins: Dictionary(list.map { ($0.type, $0) }, uniquingKeysWith: { first, _ in first })))
        }
        self.workers = workers
    }

    /// What to tell the user about tasks of `type`, or `nil` when a running worker of the
    /// topic runs it (or when that is not known).
    public func warning(for type: String) -> String? {
        guard !workers.isEmpty else { return nil }
        let found = workers.compactMap { worker in worker.plugins[type].map { (worker.name, $0) } }
        if found.contains(where: { $0.1.isLoaded }) { return nil }
        let names = workers.map(\.name).joined(separator: ", ")
        if let (name, broken) = found.first, let error = broken.loadError {
            return "task type '\(type)': its plugin does not load on the running workers of topic \(topic) "
                + "(\(name): \(error)): its tasks end FAILED unless \(broken.file) is mended before they run"
        }
        let known = Set(workers.flatMap { $0.plugins.values.filter(\.isLoaded).map(\.type) }).sorted()
        let listing = known.count > 12 ? known.prefix(12).joined(separator: ", ") + ", ..." : known.joined(separator: ", ")
        return "task type '\(type)' has no plugin on the running workers of topic \(topic) (\(names)): its tasks "
            + "end FAILED (unknown task type) unless \(type).lua is added to their plugin folder before they run. "
            + "They run: \(known.isEmpty ? "no type at all" : listing)"
    }
}
