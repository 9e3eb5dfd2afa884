/// Request paths as `yadtq-web` routes them and checks them: one spelling per resource.
public enum WebPath {
    /// `path` (without its query) with empty and `.` segments dropped and `..` applied:
    /// `//api//tasks/` and `/static/../api/tasks` are both `/api/tasks`. The server hands
    /// this form to the router *and* to its access checks, so no spelling of a path can
    /// reach a route while passing for another one.
    public static func normalised(_ path: some StringProtocol) -> String {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(Substring(segment))
            }
        }
        return "/" + segments.joined(separator: "/")
    }
}

/// The host names a server answers to (`yadtq-web`, a worker's `/metrics`), checked against
/// every request's `Host` header like Django's ALLOWED_HOSTS, so a page of another site cannot
/// reach a server on this machine by pointing its own name at 127.0.0.1 (DNS rebinding).
///
/// A pattern is a host name or address (`tasks.example.com`, `10.0.0.5`, `[::1]` or `::1`),
/// `.example.com` for that name and every subdomain, or `*` for any host. Any port is
/// accepted: a pattern's own port (`tasks.example.com:8080`, `[::1]:8080`) is dropped.
public struct HostAllowList: Sendable, Equatable, CustomStringConvertible {
    /// The loopback names every server answers to.
    public static let loopback = ["localhost", "127.0.0.1", "[::1]"]

    /// Lower-case patterns, IPv6 addresses in brackets.
    public private(set) var patterns: [String]

    /// The loopback names, the address the server listens on, and `extra` patterns.
    public init(listeningOn host: String, extra: [String] = []) {
        var patterns: [String] = []
        for pattern in Self.loopback + [host] + extra {
            let normal = Self.normalisedPattern(pattern)
            if !normal.isEmpty, !patterns.contains(normal) { patterns.append(normal) }
        }
        self.patterns = patterns
    }

    /// Patterns separated by commas or spaces, as `--allowed-hosts` and `YADTQ_WEB_ALLOWED_HOSTS` give them.
    /// A pattern with a scheme (`https://`) or a path is refused, with a message that names
    /// `source`: it would never match a `Host` header. A port (`tasks.example.com:8080`) is
    /// dropped, since any port is accepted.
    public static func patterns(parsing text: String, source: String = "--allowed-hosts") throws -> [String] {
        let patterns = text.split { $0 == "," || $0 == " " }.map(String.init)
        for pattern in patterns {
            let shown = TerminalText.escaped(pattern)
            var problem: String?
            if pattern.contains("://") {
                problem = "'\(shown)' has a scheme"
            } else if pattern.contains("/") || pattern.contains("?") || pattern.contains("#") || pattern.contains("@") {
                problem = "'\(shown)' is not a host name (it has a path, query or user)"
            } else if normalisedPattern(pattern) != "*", hostName(of: normalisedPattern(pattern)) == nil {
                problem = "'\(shown)' is not a host name"
            }
            if let problem {
                throw YADTQError(
                    .configuration, "\(source): \(problem)",
                    remedy: "Give host names or addresses, with or without a port: tasks.example.com, "
                        + ".example.com for a domain and its subdomains, 10.0.0.5, [::1], or * for any")
            }
        }
        return patterns
    }

    /// Where a server's own host names come from: its option and the environment variable
    /// that stands in for it, named once for parsing them and for telling a refused client.
    public struct Setting: Sendable {
        public let flag: String
        public let variable: String

        /// `yadtq-web --allowed-hosts`.
        public static let web = Setting(flag: "--allowed-hosts", variable: "YADTQ_WEB_ALLOWED_HOSTS")
        /// `yadtq-worker --metrics-allowed-hosts`.
        public static let workerMetrics = Setting(
            flag: "--metrics-allowed-hosts", variable: "YADTQ_WORKER_METRICS_ALLOWED_HOSTS")
    }

    /// The patterns a server adds to the loopback names and its address: those of `setting`'s
    /// option (`flag`, its value) when it is given, else those of its environment variable.
    public static func patterns(flag: String?, of setting: Setting, environment: [String: String]) throws -> [String] {
        if let flag { return try patterns(parsing: flag, source: setting.flag) }
        return try patterns(parsing: environment[setting.variable] ?? "", source: setting.variable)
    }

    /// What a request for a host name the server does not answer to is told: the name it used,
    /// the names served, and how to add one (`setting`'s option or variable).
    public func refusal(of authority: String?, setting: Setting) -> String {
        let named = authority.map { "'\(TerminalText.escaped($0))'" } ?? "no Host header"
        return "this server does not answer to \(named): it serves \(self). Add the name with \(setting.flag) or "
            + "\(setting.variable) (comma-separated; '.example.com' for a domain and its subdomains) if it is yours"
    }

    public var description: String { patterns.joined(separator: ", ") }

    /// Whether a request with this `Host` header (or HTTP/2 `:authority`) may be served.
    public func allows(_ authority: String?) -> Bool {
        guard let authority, let host = Self.hostName(of: authority) else { return false }
        return patterns.contains { pattern in
            if pattern == "*" { return true }
            if pattern.hasPrefix(".") { return host == pattern.dropFirst() || host.hasSuffix(pattern) }
            return host == pattern
        }
    }

    /// The host part of `host[:port]` or `[v6]:port`, lower-cased and without a trailing dot;
    /// `nil` when it is not a well-formed authority.
    public static func hostName(of authority: String) -> String? {
        var text = Substring(authority.lowercased())
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && rest.dropFirst().allSatisfy(\.isASCIIDigit)) else { return nil }
            return String(text[...close])
        }
        if let colon = text.firstIndex(of: ":") {
            guard text[text.index(after: colon)...].allSatisfy(\.isASCIIDigit) else { return nil }
            text = text[..<colon]
        }
        if text.hasSuffix(".") { text = text.dropLast() }
        guard !text.isEmpty,
            text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") })
        else { return nil }
        return String(text)
    }

    private static func normalisedPattern(_ pattern: String) -> String {
        var text = pattern.trimmingSpaces().lowercased()
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            // `[v6]:port`: any port is accepted.
            text = String(text[...close])
        } else if let colon = text.firstIndex(of: ":"), text.lastIndex(of: ":") == colon {
            // One colon is `host:port` (an IPv6 address has at least two).
            let port = text[text.index(after: colon)...]
            if !port.isEmpty && port.allSatisfy(\.isASCIIDigit) { text = String(text[..<colon]) }
        } else if text.contains(":") {
            text = "[" + text + "]"
        }
        if text.count > 1, text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
