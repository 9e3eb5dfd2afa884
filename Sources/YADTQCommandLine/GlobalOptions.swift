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

    /// The settings from the environment with these flags applied on top.
    public func settings() throws -> YADTQSettings {
        var settings = try YADTQSettings()
        if let brokers { settings.brokers = brokers }
        if let redis { settings.redis = try RedisURL(parsing: redis) }
        if let namespace { settings.namespace = namespace }
        if let group { settings.group = group }
        return settings
    }

    /// Whether logs are JSON lines (`--log-format json` or `YADTQ_LOG_FORMAT=json`).
    public var logsJSON: Bool {
        (logFormat ?? ProcessInfo.processInfo.environment["YADTQ_LOG_FORMAT"] ?? "text").lowercased() == "json"
    }

    /// A logger writing to standard error at the chosen level, as text or JSON lines.
    public func logger(label: String) -> Logger {
        let json = logsJSON
        var logger = Logger(label: label) { label in
            json ? JSONLogHandler(label: label) as any LogHandler : StreamLogHandler.standardError(label: label)
        }
        let level = logLevel ?? ProcessInfo.processInfo.environment["YADTQ_LOG_LEVEL"] ?? "info"
        logger.logLevel = Logger.Level(rawValue: level) ?? .info
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
