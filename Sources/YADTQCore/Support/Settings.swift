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

    /// Reads the settings from an environment (the process's by default), with `flags` laid
    /// over it first: each flag's text under the variable it beats (`["YADTQ_REDIS":
    /// "redis://..."]` for `--redis`), so a flag replaces an invalid variable rather than
    /// failing on it. Every value is checked once, after that, and a refusal names where
    /// the value came from (`--redis` or `YADTQ_REDIS`).
    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment, flags: [String: String] = [:]
    ) throws {
        let environment = environment.merging(flags) { _, flag in flag }
        func source(_ variable: String) -> String { flags[variable] == nil ? variable : Self.flagName(of: variable) }
        brokers = environment["YADTQ_BROKERS"] ?? Self.defaultBrokers
        do {
            redis = try RedisURL(parsing: environment["YADTQ_REDIS"] ?? Self.defaultRedis)
        } catch var error as YADTQError {
            error.message = "\(source("YADTQ_REDIS")): \(error.message)"
            throw error
        }
        namespace = environment["YADTQ_NAMESPACE"] ?? "yadtq"
        if let problem = Self.problem(withNamespace: namespace) {
            throw YADTQError(
                .configuration, "\(source("YADTQ_NAMESPACE")): \(problem)",
                remedy: "Choose another prefix, or unset YADTQ_NAMESPACE for 'yadtq'")
        }
        topic = environment["YADTQ_TOPIC"] ?? "tasks"
        if let problem = TopicName.problem(with: topic) {
            throw YADTQError(
                .configuration, "\(source("YADTQ_TOPIC")): \(problem)",
                remedy: "Give such a name, or unset YADTQ_TOPIC for 'tasks'")
        }
        group = environment["YADTQ_GROUP"] ?? "workers"
        pluginsDirectory = environment["YADTQ_PLUGINS"] ?? "./plugins"
        kafkaOverrides = Self.kafkaOverrides(from: environment)
        retention = Retention(
            succeeded: try Self.duration(
                environment, "YADTQ_KEEP_SUCCEEDED", source("YADTQ_KEEP_SUCCEEDED"), default: Retention.standard.succeeded),
            failed: try Self.duration(
                environment, "YADTQ_KEEP_FAILED", source("YADTQ_KEEP_FAILED"), default: Retention.standard.failed))
    }

    /// The flag that beats `variable`: `YADTQ_KEEP_FAILED` is `--keep-failed`.
    static func flagName(of variable: String) -> String {
        "--" + variable.dropFirst("YADTQ_".count).lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// What is wrong with `namespace` as the prefix of every Redis key; `nil` when nothing.
    /// Braces are refused: on a Redis Cluster the first `{...}` of a key chooses its hash slot,
    /// so `x{}` would make the scripts' keys fall in different slots (CROSSSLOT) and `{app}`
    /// would put every shard on one master.
    public static func problem(withNamespace namespace: String) -> String? {
        let rule = "a namespace is 1 or more printable characters without braces or whitespace "
            + "(on a Redis Cluster braces choose the keys' hash slot)"
        if namespace.isEmpty { return "the namespace is empty: \(rule)" }
        if let bad = namespace.unicodeScalars.first(where: {
            $0 == "{" || $0 == "}" || $0.properties.isWhitespace || $0.properties.generalCategory == .control
                || $0.properties.generalCategory == .format
        }) {
            let shown = bad.isASCII && bad.value >= 0x20 && bad.value < 0x7F
                ? "'\(bad)'" : "U+\(String(bad.value, radix: 16, uppercase: true))"
            return "the namespace '\(TerminalText.escaped(namespace))' has \(shown) in it: \(rule)"
        }
        return nil
    }

    private static func duration(
        _ environment: [String: String], _ name: String, _ source: String, default value: Duration
    ) throws -> Duration {
        guard let text = environment[name] else { return value }
        guard let duration = Duration(parsing: text) else {
            throw YADTQError(
                .configuration, "\(source)='\(TerminalText.escaped(text))' is not a duration",
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

    /// The options a URL's query may carry.
    public static let knownOptions = ["cluster"]

    /// Reads a `redis://` URL. An error never shows the password: its text is built from
    /// ``redacted(_:)``, never from `text` itself.
    public init(parsing text: String) throws {
        let shown = Self.redacted(text)
        func invalid(_ reason: String) -> YADTQError {
            YADTQError(
                .configuration, "'\(shown)' is not a Redis URL: \(reason)",
                remedy: "Write it as redis://[[user]:password@]host:port/db, e.g. \(YADTQSettings.defaultRedis), "
                    + "or redis://host:port,host:port,... for a Redis Cluster; percent-encode '/', '@', '?' "
                    + "and ':' in a user or password (%2F, %40, %3F, %3A)")
        }
        guard text.hasPrefix("redis://") else { throw invalid("it does not start with redis://") }
        var rest = Substring(text.dropFirst("redis://".count))
        var query = ""
        var path = ""
        // The host part ends at the first '/' or '?': an '@' after it is a password's
        // (or user's) unencoded '/' or '?', which would otherwise be read as the host.
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) {
            guard !rest[end...].contains("@") else {
                throw invalid("an '@' after the host: the user or password has an unencoded '/' or '?' in it")
            }
            var tail = rest[end...]
            rest = rest[..<end]
            if let mark = tail.firstIndex(of: "?") {
                query = String(tail[tail.index(after: mark)...])
                tail = tail[..<mark]
            }
            path = String(tail.dropFirst())
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
                guard !secret.isEmpty else {
                    throw invalid("the user '\(TerminalText.escaped(String(user)))' comes without a password")
                }
                username = decoded(user)
            }
            password = secret.isEmpty ? nil : decoded(secret)
            rest = rest[rest.index(after: at)...]
        }
        let entries = rest.split(separator: ",", omittingEmptySubsequences: false)
        nodes = try entries.map { entry in
            func badPort() -> YADTQError {
                invalid("bad port in '\(TerminalText.escaped(String(entry)))' (a port is 1 to 65535)")
            }
            func port(_ digits: Substring) throws -> Int32 {
                guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let value = Int32(digits),
                    (1...65535).contains(value)
                else { throw badPort() }
                return value
            }
            if entry.isEmpty {
                guard entries.count == 1 else { throw invalid("an empty node in the list (a stray ',')") }
                return Node(host: "127.0.0.1", port: 6379)
            }
            var host = Substring(entry)
            var number: Int32 = 6379
            if host.hasPrefix("[") {
                guard let close = host.firstIndex(of: "]") else {
                    throw invalid("'\(TerminalText.escaped(String(entry)))' opens '[' without closing it")
                }
                let after = host[host.index(after: close)...]
                host = host[host.index(after: host.startIndex)..<close]
                if after.hasPrefix(":") {
                    number = try port(after.dropFirst())
                } else if !after.isEmpty {
                    throw badPort()
                }
            } else if let colon = host.lastIndex(of: ":") {
                number = try port(host[host.index(after: colon)...])
                host = host[..<colon]
            }
            return Node(host: host.isEmpty ? "127.0.0.1" : String(host), port: number)
        }
        let trimmed = path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if trimmed.isEmpty {
            database = 0
        } else if trimmed.allSatisfy(\.isASCIIDigit), let database = Int(trimmed) {
            self.database = database
        } else {
            throw invalid("'\(TerminalText.escaped(trimmed))' is not a database number (end the URL with /0, /1, ...)")
        }
        var clusterOption: String?
        for option in query.split(separator: "&") {
            let parts = option.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            guard Self.knownOptions.contains(name) else {
                throw invalid(
                    "unknown option '\(TerminalText.escaped(name))' (known: "
                        + Self.knownOptions.map { "\($0)=yes|no" }.joined(separator: ", ") + ")")
            }
            clusterOption = parts.count > 1 ? String(parts[1]) : "yes"
        }
        if let clusterOption {
            // Exact, as the README writes it (cluster=yes|no): unlike a variable, a URL is not
            // read in any case.
            guard let on = SwitchWord.meaning(of: clusterOption) else {
                throw invalid(
                    "cluster=\(TerminalText.escaped(clusterOption)) is neither on nor off (give cluster= with "
                        + SwitchWord.choices(on: "for a Redis Cluster", off: "for a single Redis") + ")")
            }
            guard on || nodes.count == 1 else { throw invalid("several nodes with cluster=\(clusterOption)") }
            isCluster = on
        } else {
            isCluster = nodes.count > 1
        }
        if isCluster && database != 0 {
            throw invalid("a Redis Cluster has only database 0")
        }
    }

    /// `text` with the password replaced by `***`, for messages about a URL that may not
    /// parse: everything between the scheme and the last '@' but a user before a ':'.
    /// Control characters are escaped.
    public static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@") else { return TerminalText.escaped(text) }
        var start = text.startIndex
        if let scheme = text.range(of: "://"), scheme.upperBound <= at { start = scheme.upperBound }
        let credentials = text[start..<at]
        let shown: Substring
        if let colon = credentials.firstIndex(of: ":") {
            let user = credentials[..<colon]
            // A '/' or '?' in the user part means the URL's parts are not where they belong:
            // hide all of it.
            shown = user.contains(where: { $0 == "/" || $0 == "?" }) ? "***" : user + ":***"
        } else {
            shown = credentials.contains(where: { $0 == "/" || $0 == "?" }) ? "***" : credentials
        }
        return TerminalText.escaped(String(text[..<start] + shown + text[at...]))
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
