import Foundation

/// What a producer tells, once per task type, about types the running workers of its topic
/// cannot run (``PluginCoverage``). The fleet is read from Redis at the first new type and
/// again at a new type once ``refreshAfter`` has passed, so a long stream
/// (`tail -f tasks.txt | yadtq-run`) judges by workers as they are. A failed reading tells
/// nothing: the warnings are advice, never a reason to hold tasks back. The first reading
/// takes the heartbeats the producer read to choose its topic when they are recent enough,
/// so a run asks Redis for them once.
public final class TypeWarnings {
    private let store: TaskStore
    private let topic: String
    private let group: String
    /// How old a reading of the fleet may be when a new type comes.
    public static let refreshAfter: Duration = .seconds(30)
    private var coverage: PluginCoverage?
    private var readAt: ContinuousClock.Instant?
    private var judged: Set<String> = []
    /// The heartbeats the caller read before (nil: none, or the reading failed), and when.
    private var heartbeatsRead: (heartbeats: [TaskStore.WorkerHeartbeat], at: ContinuousClock.Instant)?

    /// - Parameter heartbeats: the fleet's heartbeats as the caller has just read them (nil
    ///   when it has not, or its reading failed); the first reading uses them instead of asking
    ///   Redis again, unless ``refreshAfter`` has passed since.
    public init(store: TaskStore, topic: String, group: String, heartbeats: [TaskStore.WorkerHeartbeat]? = nil) {
        self.store = store
        self.topic = topic
        self.group = group
        heartbeatsRead = heartbeats.map { ($0, .now) }
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
        let given = heartbeatsRead.flatMap { ContinuousClock.now - $0.at < Self.refreshAfter ? $0.heartbeats : nil }
        heartbeatsRead = nil
        guard let heartbeats = given ?? (try? store.workerHeartbeats()), let plugins = try? store.publishedPlugins() else {
            coverage = nil
            return
        }
        coverage = PluginCoverage(
            topic: topic, group: group, heartbeats: heartbeats, plugins: plugins, now: currentEpochMilliseconds())
    }
}
