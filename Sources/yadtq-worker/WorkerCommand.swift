import ArgumentParser
import Dispatch
import Foundation
import YADTQCommandLine
import YADTQCore
import YADTQWeb

@main
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-worker",
        abstract: "Run tasks from a topic with the Lua plugins of a folder.",
        discussion: """
            Workers with the same group share the topic's partitions; Kafka moves a \
            worker's partitions to the others when it stops or dies. SIGINT/SIGTERM \
            finish the tasks in hand, commit and leave the group; a second one exits at once.
            """)

    @Argument(help: "This worker's name, unique among the running workers (with --check: the plugin folder).")
    var name: String?

    @Argument(help: "The topic to consume.")
    var topic: String?

    @Flag(help: "Load every plugin, print a table of them and exit: 1 if any fails to load.")
    var check = false

    /// The core's defaults, which the flags below take theirs from.
    private static let defaults = WorkerOptions(name: "", topic: "")

    @Option(help: "Tasks to run at once, each in its own Lua state.")
    var concurrency = defaults.concurrency

    @Option(help: "Plugin folder: one <type>.lua per task type (env YADTQ_PLUGINS).")
    var plugins: String?

    @Option(help: "Time limit of one task unless its plugin declares a lower one, e.g. 30s.")
    var timeout = defaults.limits.timeout

    @Option(help: "Memory limit of each Lua state in MiB.")
    var memoryLimit = defaults.limits.memoryBytes / (1024 * 1024)

    @Option(help: "How often the worker writes its heartbeat, e.g. 5s.")
    var heartbeatInterval = defaults.heartbeatInterval

    @Option(help: "Messages taken from Kafka per batch.")
    var batchSize = defaults.batchSize

    @Option(help: "Wait before a failed task's second attempt, doubled for each later one, e.g. 100ms.")
    var retryDelay = defaults.retry.baseDelay

    @Option(help: "The longest wait between two attempts of a task, e.g. 2s.")
    var retryMaxDelay = defaults.retry.maxDelay

    // Optional, with the default only in the help: without the flag, YADTQ_KEEP_* (read by
    // YADTQSettings) beats the core's default.
    @Option(help: "How long a SUCCESS task stays in Redis, e.g. 12h (env YADTQ_KEEP_SUCCEEDED; default \(Retention.standard.succeeded.flagText)).")
    var keepSucceeded: Duration?

    @Option(help: "How long a FAILED task stays in Redis, e.g. 30d (env YADTQ_KEEP_FAILED; default \(Retention.standard.failed.flagText)).")
    var keepFailed: Duration?

    @Option(help: "Serve this worker's metrics on http://\(ListenAddress().host):PORT/metrics (0: a free port, logged). Off by default.")
    var metricsPort: Int?

    @Option(help: "Address of the metrics endpoint: 127.0.0.1 for this machine only, 0.0.0.0 for every interface.")
    var metricsHost = ListenAddress().host

    @Option(
        help: """
            Host names the metrics endpoint answers to besides \(HostAllowList.loopback.joined(separator: ", ")), \
            --metrics-host and this machine's name, comma-separated ('.example.com' for a domain and its subdomains, \
            '*' for any): the name Prometheus scrapes it by; other Host headers get a 400 \
            (env \(HostAllowList.Setting.workerMetrics.variable)).
            """)
    var metricsAllowedHosts: String?

    @Option(help: "How long Redis may stay unreachable before the worker gives its partitions up (leaves the group until Redis answers), e.g. 10s. A Redis that refuses every worker alike (full, say) is waited out with the partitions kept.")
    var redisOutageLimit = defaults.redisOutageLimit

    @Flag(help: "The failure-prone consumer: exit abruptly after a random 3rd to 5th task.")
    var chaos = false

    @Flag(help: "Never run the scheduler (due SCHEDULED tasks, periodic tasks, lost tasks) on this worker; another worker of the topic does.")
    var noScheduler = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if !check {
            guard name != nil, topic != nil else {
                throw ValidationError("give the worker's name and the topic, e.g. yadtq-worker w1 tasks")
            }
            try validateTopic(topic, "the topic")
            if let name, let problem = WorkerOptions.problem(withName: name) { throw ValidationError(problem) }
        }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be from 0 (a free port) to 65535")
        }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        if let problem = WorkerOptions.problem(withMemoryLimitMiB: memoryLimit) {
            throw ValidationError("--memory-limit: \(problem)")
        }
        if let problem = WorkerOptions.problem(withHeartbeatInterval: heartbeatInterval) {
            throw ValidationError("--heartbeat-interval: \(problem)")
        }
        if let problem = WorkerOptions.problem(withRedisOutageLimit: redisOutageLimit) {
            throw ValidationError("--redis-outage-limit: \(problem)")
        }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard retryMaxDelay >= retryDelay else {
            throw ValidationError("--retry-max-delay must be at least --retry-delay")
        }
    }

    func run() throws {
        do {
            let settings = try global.settings(flags: [
                "YADTQ_PLUGINS": plugins, "YADTQ_KEEP_SUCCEEDED": keepSucceeded.map { "\($0.inMilliseconds)ms" },
                "YADTQ_KEEP_FAILED": keepFailed.map { "\($0.inMilliseconds)ms" },
            ])
            guard !check else { return try checkPlugins(in: name ?? settings.pluginsDirectory) }
            guard let name, let topic else { return }
            var options = WorkerOptions(name: name, topic: topic)
            options.concurrency = concurrency
            options.chaos = chaos
            options.scheduler = !noScheduler
            options.batchSize = chaos ? 1 : batchSize
            options.limits = PluginLimits(timeout: timeout, memoryBytes: memoryLimit * 1024 * 1024)
            options.heartbeatInterval = heartbeatInterval
            options.retry = RetryPolicy(baseDelay: retryDelay, maxDelay: retryMaxDelay)
            options.redisOutageLimit = redisOutageLimit
            let logger = global.logger(label: "yadtq-worker.\(name)")
            let worker = Worker(settings: settings, options: options, logger: logger)
            if let metricsPort {
                // This machine's name too: the Workers page links to a worker's metrics by it.
                let allowedHosts = try HostAllowList(
                    listeningOn: metricsHost,
                    extra: [ProcessInfo.processInfo.hostName]
                        + HostAllowList.patterns(
                            flag: metricsAllowedHosts, of: .workerMetrics, environment: ProcessInfo.processInfo.environment))
                let metrics = worker.metrics
                let port = try MetricsEndpoint.start(
                    host: metricsHost, port: metricsPort, allowedHosts: allowedHosts, logger: logger
                ) { metrics.exposition() }
                worker.activity.serveMetrics(on: port)
                logger.notice("metrics on http://\(metricsHost):\(port)/metrics (hosts \(allowedHosts))")
            }
            // One serial queue serves both signals, so `received` needs no lock of its own.
            let signalQueue = DispatchQueue(label: "yadtq-signals")
            let received = SignalCount()
            let signals = [SIGINT, SIGTERM].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: signalQueue)
                source.setEventHandler {
                    switch received.rule.received() {
                    case .stopCleanly:
                        logger.notice(
                            "signal \(number): finishing the tasks in hand, then leaving (a second SIGTERM/SIGINT exits at once)")
                        worker.requestStop()
                    case .exitNow:
                        logger.notice(
                            "signal \(number) again: exiting at once; the other workers redeliver the tasks in hand, as after kill -9")
                        _exit(128 + number)
                    }
                }
                source.resume()
                return source
            }
            _ = try withExtendedLifetime(signals) { try worker.run() }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            exitWithError(error)
        }
    }

    /// `--check`: loads every plugin of `directory` the way a worker does.
    private func checkPlugins(in directory: String) throws {
        let registry = PluginRegistry(directory: directory)
        if let scanError = registry.scanError { throw YADTQError(.plugin, scanError) }
        let plugins = registry.plugins
        let typeWidth = max(4, plugins.map(\.type.count).max() ?? 0) + 2
        func pad(_ text: String) -> String { text + String(repeating: " ", count: max(1, typeWidth - text.count)) }
        print(pad("TYPE") + "STATUS  DESCRIPTION")
        for plugin in plugins {
            let status = plugin.loadError == nil ? "ok      " : "ERROR   "
            print(pad(plugin.type) + status + (plugin.loadError.map(\.description) ?? plugin.description ?? ""))
        }
        let broken = plugins.filter { $0.loadError != nil }.count
        print("\(plugins.count) plugins in \(directory), \(broken) with errors")
        if broken > 0 || plugins.isEmpty { throw ExitCode(1) }
    }
}

/// The signals received so far (``StopSignals``).
private final class SignalCount: @unchecked Sendable {
    // @unchecked Sendable: `rule` is touched only on the one serial queue that serves both
    // signal sources.
    var rule = StopSignals()
}
