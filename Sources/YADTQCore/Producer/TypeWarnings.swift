import Foundation

/// What a producer tells, once per task type, about types the running workers of its topic
/// cannot run (``PluginCoverage``). The fleet is read from Redis at the first new type and
/// again at a new type once ``refreshAfter`` has passed, so a long stream
/// (`tail -f tasks.txt | yadtq-run`) judges by workers as they are. A failed reading tells
/// nothing: the warnings are advice, never a reason to hold tasks back.
public final class TypeWarnings {
    private let store: TaskStore
    private let topic: String
    private let group: String
    /// How old a reading of the fleet may be when a new type comes.
    public static let refreshAfter: Duration = .seconds(30)
    private var coverage: PluginCoverage?
    private var readAt: ContinuousClock.Instant?
    private var judged: Set<String> = []

    public init(store: TaskStore, topic: String, group: String) {
        self.store = store
        self.topic = topic
        self.group = group
    }

    /// The warnings for the types of `types` not judged before, in order.
    public func warnings(for types: some Sequence<String>) -> [String] {
        var warnings: [String] = []
        for type in types where judged.insert(type).inserted {
            if readAt.map({ ContinuousClock.now - $0 >= Self.refreshAfter }) ?? true { read() }
            if let warning = coverage?.warning(for: type) { warnings.append(warning) }
        }
        return warnings
    }

    private func read() {
        readAt = .now
        guard let heartbeats = try? store.workerHeartbeats(), let plugins = try? store.publishedPlugins() else {
            coverage = nil
            return
        }
        coverage = PluginCoverage(
            topic: topic, group: group, heartbeats: heartbeats, plugins: plugins, now: currentEpochMilliseconds())
    }
}
