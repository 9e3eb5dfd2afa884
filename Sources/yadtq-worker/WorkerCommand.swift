import ArgumentParser
import Dispatch
import Foundation
import YADTQCommandLine
import YADTQCore

@main
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-worker",
        abstract: "Run tasks from a topic with the Lua plugins of a folder.",
        discussion: """
            Workers with the same group share the topic's partitions; Kafka moves a \
            worker's partitions to the others when it stops or dies. SIGINT/SIGTERM \
            finish the tasks in hand, commit and leave the group.
            """)

    @Argument(help: "This worker's name, unique among the running workers.")
    var name: String

    @Argument(help: "The topic to consume.")
    var topic: String

    @Option(help: "Tasks to run at once, each in its own Lua state.")
    var concurrency = 1

    @Option(help: "Plugin folder: one <type>.lua per task type (env YADTQ_PLUGINS).")
    var plugins: String?

    @Option(help: "Time limit of one task unless its plugin declares a lower one, e.g. 30s.")
    var timeout: Duration = .seconds(30)

    @Option(help: "Memory limit of each Lua state in MiB.")
    var memoryLimit = 64

    @Option(help: "How often the worker writes its heartbeat, e.g. 5s.")
    var heartbeatInterval: Duration = .seconds(5)

    @Option(help: "Messages taken from Kafka per batch.")
    var batchSize = 1000

    @Flag(help: "The failure-prone consumer: exit abruptly after a random 3rd to 5th task.")
    var chaos = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard memoryLimit >= 1 else { throw ValidationError("--memory-limit must be at least 1 MiB") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        do {
            var settings = try global.settings()
            if let plugins { settings.pluginsDirectory = plugins }
            var options = WorkerOptions(name: name, topic: topic)
            options.concurrency = concurrency
            options.chaos = chaos
            options.batchSize = chaos ? 1 : batchSize
            options.limits = PluginLimits(timeout: timeout, memoryBytes: memoryLimit * 1024 * 1024)
            options.heartbeatInterval = heartbeatInterval
            let logger = global.logger(label: "yadtq-worker.\(name)")
            let worker = Worker(settings: settings, options: options, logger: logger)
            let signals = [SIGINT, SIGTERM].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    logger.notice("signal \(number): finishing the tasks in hand, then leaving")
                    worker.requestStop()
                }
                source.resume()
                return source
            }
            _ = try withExtendedLifetime(signals) { try worker.run() }
        } catch {
            exitWithError(error)
        }
    }
}
