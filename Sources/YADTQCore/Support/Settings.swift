import Foundation

/// The settings every YADTQ command reads. A command-line flag beats an
/// environment variable, which beats the default (see the README's Configuration).
public struct YADTQSettings: Sendable {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    public var brokers: String
    /// Redis location, `redis://[:password@]host:port/db`.
    public var redis: RedisURL
    /// Prefix of every Redis key, without the trailing colon.
    public var namespace: String
    public var topic: String
    public var group: String
    public var pluginsDirectory: String
    /// Extra librdkafka properties (SASL, TLS, timeouts) from `YADTQ_KAFKA_<KEY>` variables,
    /// applied to every Kafka client after YADTQ's own defaults.
    public var kafkaOverrides: [String: String]
    /// How long finished tasks stay in Redis: successes, and every other terminal status.
    public var retention: Retention

    public static let defaultBrokers = "127.0.0.1:9092"
    public static let defaultRedis = "redis://127.0.0.1:6379/0"

    /// Reads the settings from an environment (the process's by default).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        brokers = environment["YADTQ_BROKERS"] ?? Self.defaultBrokers
        redis = try RedisURL(parsing: environment["YADTQ_REDIS"] ?? Self.defaultRedis)
        namespace = environment["YADTQ_NAMESPACE"] ?? "yadtq"
        topic = environment["YADTQ_TOPIC"] ?? "tasks"
        group = environment["YADTQ_GROUP"] ?? "workers"
        pluginsDirectory = environment["YADTQ_PLUGINS"] ?? "./plugins"
        kafkaOverrides = Self.kafkaOverrides(from: environment)
        retention = Retention(
            succeeded: try Self.duration(environment, "YADTQ_KEEP_SUCCEEDED", default: Retention.standard.succeeded),
            failed: try Self.duration(environment, "YADTQ_KEEP_FAILED", default: Retention.standard.failed))
    }

    private static func duration(_ environment: [String: String], _ name: String, default value: Duration) throws
        -> Duration
    {
        guard let text = environment[name] else { return value }
        guard let duration = Duration(parsing: text) else {
            throw YADTQError(
                .configuration, "\(name)='\(text)' is not a duration",
                remedy: "Write it as 30s, 10m, 24h, 7d or a number of seconds")
        }
        return duration
    }

    /// `YADTQ_KAFKA_SASL_MECHANISM=PLAIN` becomes `sasl.mechanism=PLAIN`: librdkafka's
    /// property names use dots where environment variable names cannot.
    static func kafkaOverrides(from environment: [String: String]) -> [String: String] {
        let prefix = "YADTQ_KAFKA_"
        var overrides: [String: String] = [:]
        for (name, value) in environment where name.hasPrefix(prefix) && name.count > prefix.count {
            let key = name.dropFirst(prefix.count).lowercased().replacingOccurrences(of: "_", with: ".")
            overrides[key] = value
        }
        return overrides
    }

    /// The Redis key prefix including its separator, e.g. `yadtq:`.
    public var keyPrefix: String { namespace + ":" }
}

/// How long a terminal task is kept in Redis before it is deleted with its index entries
/// and counts.
public struct Retention: Sendable, Equatable {
    /// SUCCESS tasks.
    public var succeeded: Duration
    /// FAILED tasks (and any other terminal status).
    public var failed: Duration

    public static let standard = Retention(succeeded: .seconds(24 * 3600), failed: .seconds(7 * 24 * 3600))

    public init(succeeded: Duration, failed: Duration) {
        self.succeeded = succeeded
        self.failed = failed
    }
}

/// A parsed `redis://` URL.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int32
    public var password: String?
    public var database: Int

    public init(parsing text: String) throws {
        guard let components = URLComponents(string: text), components.scheme == "redis" else {
            throw YADTQError(
                .configuration, "'\(text)' is not a Redis URL",
                remedy: "Write it as redis://[:password@]host:port/db, e.g. \(YADTQSettings.defaultRedis)")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        port = Int32(components.port ?? 6379)
        password = components.password.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if path.isEmpty {
            database = 0
        } else if let database = Int(path), database >= 0 {
            self.database = database
        } else {
            throw YADTQError(
                .configuration, "'\(path)' in '\(text)' is not a Redis database number",
                remedy: "End the URL with /0, /1, ...")
        }
    }

    /// The URL without its password, for logs and error messages.
    public var description: String {
        "redis://\(password == nil ? "" : ":***@")\(host):\(port)/\(database)"
    }
}

/// Milliseconds since the epoch, the unit of every timestamp YADTQ stores.
public func currentEpochMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
