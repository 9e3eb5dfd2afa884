import Foundation

/// The settings every YADTQ command reads. A command-line flag beats an
/// environment variable, which beats the default (see the README's Configuration).
public struct YADTQSettings: Sendable {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    public var brokers: String
    /// Redis location, `redis://[[user]:password@]host:port/db`.
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
        if let problem = TopicName.problem(with: topic) {
            throw YADTQError(.configuration, "YADTQ_TOPIC: \(problem)", remedy: "Set YADTQ_TOPIC to such a name, or unset it for 'tasks'")
        }
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

/// A parsed `redis://` URL: one Redis, or the seed nodes of a Redis Cluster.
///
/// `redis://[[user]:password@]host:port/db` is one Redis (a user is an ACL user of Redis 6 or
/// later; without one YADTQ logs in as the default user). Several nodes joined by commas
/// (`redis://h1:7000,h2:7000,h3:7000`) or `?cluster=yes` mean a Redis Cluster: the nodes
/// are where the client first asks for the slot map (any live one will do).
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    /// One Redis server's address.
    public struct Node: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int32

        public init(host: String, port: Int32) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// The server (or the cluster's seed nodes), in the order given.
    public var nodes: [Node]
    /// The ACL user to log in as; nil: Redis's default user.
    public var username: String?
    public var password: String?
    public var database: Int
    public var isCluster: Bool

    /// The first node: the server of a single Redis.
    public var host: String { nodes[0].host }
    public var port: Int32 { nodes[0].port }

    public init(parsing text: String) throws {
        func invalid(_ reason: String) -> YADTQError {
            YADTQError(
                .configuration, "'\(text)' is not a Redis URL: \(reason)",
                remedy: "Write it as redis://[[user]:password@]host:port/db, e.g. \(YADTQSettings.defaultRedis), "
                    + "or redis://host:port,host:port,... for a Redis Cluster")
        }
        guard text.hasPrefix("redis://") else { throw invalid("it does not start with redis://") }
        var rest = Substring(text.dropFirst("redis://".count))
        var query = ""
        if let mark = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: mark)...])
            rest = rest[..<mark]
        }
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
        }
        username = nil
        password = nil
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            let colon = credentials.firstIndex(of: ":")
            let user = colon.map { credentials[..<$0] } ?? credentials
            let secret = colon.map { credentials[credentials.index(after: $0)...] } ?? ""
            func decoded(_ text: Substring) -> String { String(text).removingPercentEncoding ?? String(text) }
            if !user.isEmpty {
                // AUTH takes a user only with its password (a nopass user accepts any).
                guard !secret.isEmpty else { throw invalid("the user '\(user)' comes without a password") }
                username = decoded(user)
            }
            password = secret.isEmpty ? nil : decoded(secret)
            rest = rest[rest.index(after: at)...]
        }
        nodes = try rest.split(separator: ",", omittingEmptySubsequences: false).map { entry in
            if entry.isEmpty { return Node(host: "127.0.0.1", port: 6379) }
            var host = Substring(entry)
            var port: Int32 = 6379
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                let after = host[host.index(after: close)...]
                host = host[host.index(after: host.startIndex)..<close]
                if after.hasPrefix(":") {
                    guard let value = Int32(after.dropFirst()), value > 0 else { throw invalid("bad port in '\(entry)'") }
                    port = value
                }
            } else if let colon = host.lastIndex(of: ":") {
                guard let value = Int32(host[host.index(after: colon)...]), value > 0 else {
                    throw invalid("bad port in '\(entry)'")
                }
                port = value
                host = host[..<colon]
            }
            return Node(host: host.isEmpty ? "127.0.0.1" : String(host), port: port)
        }
        let trimmed = path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if trimmed.isEmpty {
            database = 0
        } else if let database = Int(trimmed), database >= 0 {
            self.database = database
        } else {
            throw YADTQError(
                .configuration, "'\(trimmed)' in '\(text)' is not a Redis database number",
                remedy: "End the URL with /0, /1, ...")
        }
        let options = query.split(separator: "&").map { $0.split(separator: "=", maxSplits: 1) }
        let clusterOption = options.first { $0.first == "cluster" }.map { $0.count > 1 ? String($0[1]) : "yes" }
        switch clusterOption {
        case nil: isCluster = nodes.count > 1
        case "yes", "true", "1": isCluster = true
        case "no", "false", "0":
            guard nodes.count == 1 else { throw invalid("several nodes with cluster=no") }
            isCluster = false
        case let other?: throw invalid("cluster=\(other) (use cluster=yes)")
        }
        if isCluster && database != 0 {
            throw invalid("a Redis Cluster has only database 0")
        }
    }

    /// The same credentials and database, for one node of the cluster.
    func pointing(at node: Node) -> RedisURL {
        var url = self
        url.nodes = [node]
        url.isCluster = false
        return url
    }

    /// The URL without its password, for logs and error messages.
    public var description: String {
        "redis://\(password == nil ? "" : "\(username ?? ""):***@")\(nodes.map(\.description).joined(separator: ","))/\(database)"
            + (isCluster && nodes.count == 1 ? "?cluster=yes" : "")
    }
}

/// Milliseconds since the epoch, the unit of every timestamp YADTQ stores.
public func currentEpochMilliseconds() -> Int64 {
    milliseconds(on: CLOCK_REALTIME)
}

/// Milliseconds on the monotonic clock, for spans the wall clock must not stretch or shrink
/// when it is stepped (NTP, an operator).
func monotonicMilliseconds() -> Int64 {
    milliseconds(on: CLOCK_MONOTONIC)
}

private func milliseconds(on clock: clockid_t) -> Int64 {
    var now = timespec()
    clock_gettime(clock, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
