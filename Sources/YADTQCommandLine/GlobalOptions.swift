import ArgumentParser
import Foundation
import Logging
public import YADTQCore

/// The connection flags every YADTQ command takes. A flag beats the environment
/// variable, which beats the default.
public struct GlobalOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers, host:port[,host:port] (env YADTQ_BROKERS).")
    var brokers: String?

    @Option(help: "Redis URL, redis://[[user]:password@]host:port/db (env YADTQ_REDIS).")
    var redis: String?

    @Option(help: "Prefix of every Redis key (env YADTQ_NAMESPACE).")
    var namespace: String?

    @Option(help: "Kafka consumer group (env YADTQ_GROUP).")
    var group: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env YADTQ_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "Log format: text, or json for one JSON object per line (env YADTQ_LOG_FORMAT).")
    var logFormat: String?

    public init() {}

    /// Refuses an unknown log level or format (from a flag, or the environment without one).
    public func validate() throws {
        do {
            _ = try level()
            _ = try isJSON()
        } catch let error as YADTQError {
            throw ValidationError("\(error.message). \(error.remedy ?? "")")
        }
    }

    /// The settings from the environment with these flags, and a command's own `flags` (each
    /// under the variable it beats, e.g. `["YADTQ_PLUGINS": plugins]`), laid over it, then
    /// checked once: a valid flag beats an invalid variable.
    public func settings(flags: [String: String?] = [:]) throws -> YADTQSettings {
        let global: [String: String?] = [
            "YADTQ_BROKERS": brokers, "YADTQ_REDIS": redis, "YADTQ_NAMESPACE": namespace, "YADTQ_GROUP": group,
        ]
        return try YADTQSettings(flags: global.merging(flags) { _, own in own }.compactMapValues { $0 })
    }

    /// Whether logs are JSON lines (`--log-format json` or `YADTQ_LOG_FORMAT=json`).
    public var logsJSON: Bool { (try? isJSON()) ?? false }

    private func isJSON() throws -> Bool {
        if let logFormat { return try LogSettings.isJSON(parsing: logFormat, source: "--log-format") }
        guard let text = ProcessInfo.processInfo.environment["YADTQ_LOG_FORMAT"] else { return false }
        return try LogSettings.isJSON(parsing: text, source: "YADTQ_LOG_FORMAT")
    }

    private func level() throws -> Logger.Level {
        if let logLevel { return try LogSettings.level(parsing: logLevel, source: "--log-level") }
        guard let text = ProcessInfo.processInfo.environment["YADTQ_LOG_LEVEL"] else { return .info }
        return try LogSettings.level(parsing: text, source: "YADTQ_LOG_LEVEL")
    }

    /// A logger writing to standard error at the chosen level, as text or JSON lines.
    public func logger(label: String) -> Logger {
        let json = logsJSON
        var logger = Logger(label: label) { label in
            json ? JSONLogHandler(label: label) as any LogHandler : StreamLogHandler.standardError(label: label)
        }
        logger.logLevel = (try? level()) ?? .info
        // librdkafka's own lines follow the command's log (its level and format).
        KafkaLog.use(logger)
        return logger
    }
}

extension Duration: @retroactive ExpressibleByArgument {
    /// Reads `500ms`, `5s`, `2m`, `2h`, `7d` or a bare number of seconds.
    public init?(argument: String) {
        self.init(parsing: argument)
    }

    /// Help shows a default as the flag takes it (`5s`, not `5.0 seconds`).
    public var defaultValueDescription: String { flagText }
}

/// Prints a fatal error the way every YADTQ command does and exits non-zero.
public func exitWithError(_ error: any Error) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
