import Foundation
import Logging
import Synchronization
import YADTQCore

/// What the web server reads and writes — Redis, the broker and the plugin folder —
/// behind async calls that run the blocking work on dispatch queues, never on Swift's
/// cooperative pool. Nothing here caches task data: every page and API answer comes from
/// Redis, so a restarted server shows everything.
final class WebBackend: Sendable {
    let store: TaskStore
    let configuration: WebServer.Configuration
    private let publisher: LazyPublisher
    private let registry: PluginRegistry
    private let pluginQueue = DispatchQueue(label: "yadtq.web.plugins")
    let lag: LagSource
    let queueMetrics = QueueMetrics()
    /// The login form's limit on wrong tokens, for the whole server.
    let loginThrottle = Mutex(LoginThrottle())

    /// How long a request waits for an unreachable or frozen Redis before it is answered 503.
    /// A submit waits no longer either, so a client that gives up and retries never finds its
    /// first attempt queued behind its back once Redis returns.
    static let redisWait = Duration.seconds(3)

    init(configuration: WebServer.Configuration, logger: Logger) {
        self.configuration = configuration
        // A page should fail fast with "Redis is unavailable" rather than hang for a minute.
        store = TaskStore(settings: configuration.settings, logger: logger, reconnectFor: Self.redisWait, boundsEveryCall: true)
        registry = PluginRegistry(directory: configuration.settings.pluginsDirectory)
        publisher = LazyPublisher(configuration: configuration, plugins: registry, logger: logger)
        lag = LagSource(settings: configuration.settings, topic: configuration.topic, logger: logger)
    }

    /// When the request being served is owed its answer: ``redisWait`` after it arrived (set by
    /// ``RequestNormaliser`` for every request).
    @TaskLocal static var deadline: CallDeadline?

    /// Runs Redis reads and writes on the store's own queue, within the request's ``deadline``:
    /// the queue runs one call at a time, and during a Redis stall a request must not wait for
    /// every request ahead of it and then its own 3 s.
    func read<T: Sendable>(_ body: @escaping @Sendable (TaskStore) throws -> T) async throws -> T {
        try await store.run(by: Self.deadline, body)
    }

    /// The task types in the plugin folder, rescanned so a plugin dropped in appears at once.
    func plugins() async -> PluginCatalog {
        let registry = self.registry
        // Refreshing only stats unchanged files; a changed file runs its top level in Lua.
        let catalog = try? await pluginQueue.perform {
            registry.refresh()
            return PluginCatalog(plugins: registry.plugins, scanError: registry.scanError)
        }
        return catalog ?? PluginCatalog(plugins: [], scanError: "the plugin folder could not be read")
    }

    /// Publishes tasks through the same code path as `yadtq-run`: QUEUED first, then the
    /// broker, round-robin, delivery checked. Each task is given its id first, so that a
    /// submit Redis or the broker fails can name them (``SubmissionInput/outcomeUnknown(_:of:)``,
    /// ``SubmissionInput/notSent(_:of:)``).
    func publish(_ declarations: [TaskDeclaration]) async throws -> [PublishedTask] {
        let declarations = TaskID.named(declarations)
        do {
            return try await publishing { try $0.publish(declarations) }
        } catch let error as TaskPublisher.TooLarge {
            throw SubmissionInput.tooLarge(error, of: declarations.count)
        } catch let error as CallDeadline.Expired {
            throw SubmissionInput.notSent(error, of: declarations)
        } catch let error as YADTQError where error.area == .redis || error.area == .kafka {
            throw SubmissionInput.outcomeUnknown(error, of: declarations)
        }
    }

    /// Cancels one task (see ``TaskStore/cancel(_:at:)``).
    func cancel(_ id: String) async throws -> TaskStore.OperatorChange {
        try await read { try $0.cancel([id], at: currentEpochMilliseconds())[0] }
    }

    /// Queues a FAILED or CANCELLED task again and publishes it (see ``TaskPublisher/retry(_:)``).
    func retry(_ id: String) async throws -> TaskStore.OperatorChange {
        try await publishing { try $0.retry([id])[0] }
    }

    /// Queues again and publishes every kept task `filter` takes, at most `limit` and as many
    /// as the request's ``deadline`` leaves time for (see
    /// ``TaskPublisher/retry(matching:limit:pacing:)``).
    func retry(matching filter: RetryFilter, limit: Int) async throws -> TaskPublisher.BulkRetry {
        let pacing = Self.deadline.map { BulkRetryPacing(deadline: $0.instant) }
        return try await publishing { try $0.retry(matching: filter, limit: limit, pacing: pacing) }
    }

    /// Runs `body` with the publisher on its queue, within the request's ``deadline``, as
    /// ``read(_:)`` runs reads: the queue runs one submit or retry at a time, and during a
    /// Redis stall one must not wait for every one ahead of it and then its own 3 s. One whose
    /// deadline passed while it waited its turn sends nothing (``CallDeadline/Expired``).
    private func publishing<T: Sendable>(_ body: @escaping @Sendable (TaskPublisher) throws -> T) async throws -> T {
        let publisher = self.publisher
        let deadline = Self.deadline
        return try await publisher.queue.perform {
            let connected = try publisher.connected(by: deadline)
            return try connected.store.within(deadline) { try body(connected) }
        }
    }

    /// The most tasks one bulk retry request takes (fewer when Redis or the broker is slow); the
    /// answer says when more match (send it again).
    static let bulkRetryLimit = 10_000
}

/// The plugin folder's task types, as the submit form and the validation see them.
public struct PluginCatalog: Sendable {
    public var plugins: [PluginInfo]
    /// Why the folder could not be read, when it could not.
    public var scanError: String?

    public init(plugins: [PluginInfo], scanError: String? = nil) {
        self.plugins = plugins
        self.scanError = scanError
    }

    func plugin(_ type: String) -> PluginInfo? {
        plugins.first { $0.type == type }
    }
}

/// The broker connection, made on the first submit (so the pages work while the broker
/// is still starting) and again after a failed attempt.
private final class LazyPublisher: @unchecked Sendable {
    // @unchecked Sendable: `publisher` is read and written only on `queue`, a serial queue,
    // which is also where every publish runs.
    let queue = DispatchQueue(label: "yadtq.web.publisher")
    private var publisher: TaskPublisher?
    private let configuration: WebServer.Configuration
    /// Gives tasks without `max_attempts` their plugin's own, as for `yadtq-run`.
    private let plugins: PluginRegistry
    private let logger: Logger

    init(configuration: WebServer.Configuration, plugins: PluginRegistry, logger: Logger) {
        self.configuration = configuration
        self.plugins = plugins
        self.logger = logger
    }

    /// The publisher, connecting first if needed, waiting for Redis only until `deadline`.
    /// Call only on `queue`.
    func connected(by deadline: CallDeadline?) throws -> TaskPublisher {
        dispatchPrecondition(condition: .onQueue(queue))
        if let publisher { return publisher }
        let made = try TaskPublisher(
            settings: configuration.settings, topic: configuration.topic, partitions: configuration.partitions,
            clientID: "yadtq-web", logger: logger, plugins: plugins, reconnectFor: WebBackend.redisWait,
            boundsEveryCall: true, by: deadline)
        publisher = made
        return made
    }
}
