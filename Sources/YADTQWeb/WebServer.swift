import Foundation
import Hummingbird
import Logging
import YADTQCore

/// `yadtq-web`: the pages to submit and watch tasks, and their JSON API, on Hummingbird.
///
/// Every answer is read from Redis when it is asked for, and every submit goes through
/// ``TaskPublisher`` like `yadtq-run`, so any number of web servers, restarted at will,
/// show the same tasks.
public struct WebServer: Sendable {
    /// Where the server listens and what it serves.
    public struct Configuration: Sendable {
        /// The address to bind, e.g. `127.0.0.1` (only this machine) or `0.0.0.0`.
        public var host: String
        public var port: Int
        /// Redis, broker, key prefix and plugin folder.
        public var settings: YADTQSettings
        /// The topic submitted tasks are published to.
        public var topic: String
        /// Partitions for the topic if the server has to create it.
        public var partitions: Int
        /// With a token, every page needs a login and every API call `Authorization: Bearer <token>`.
        public var token: String?
        /// The `Host` names requests may carry.
        public var allowedHosts: HostAllowList
        /// The idle timeout and the most connections served at once.
        public var limits: ConnectionLimits
        /// Whether the cookies are marked `Secure` (see ``SecureCookies``).
        public var secureCookies: Bool

        public init(
            host: String, port: Int, settings: YADTQSettings, topic: String, partitions: Int, token: String?,
            allowedHosts: [String] = [], limits: ConnectionLimits = ConnectionLimits(), secureCookies: Bool = false
        ) {
            self.allowedHosts = HostAllowList(listeningOn: host, extra: allowedHosts)
            self.host = host
            self.port = port
            self.settings = settings
            self.topic = topic
            self.partitions = partitions
            self.token = token
            self.limits = limits
            self.secureCookies = secureCookies
        }

        /// A cookie of this server (the session's, the CSRF token's): for every path, HttpOnly,
        /// SameSite=Strict, and `Secure` with ``secureCookies``.
        func cookie(_ name: String, value: String, maxAge: Int? = nil) -> Cookie {
            Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: secureCookies, httpOnly: true, sameSite: .strict)
        }
    }

    private let configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGINT or SIGTERM, then finishes the requests in flight.
    public func run() async throws {
        // Made off Swift's cooperative pool: its plugin registry reads the folder and runs each
        // plugin's top level in Lua (up to its load time limit per file).
        let backend = try await DispatchQueue(label: "yadtq.web.start").perform { [configuration, logger] in
            WebBackend(configuration: configuration, logger: logger)
        }
        let router = Router(context: WebRequestContext.self)
        router.add(middleware: WebSecurityMiddleware(
                token: configuration.token, allowedHosts: configuration.allowedHosts, backend: backend))
        APIRoutes(backend: backend).register(on: router)
        MetricsRoutes(backend: backend).register(on: router)
        PageRoutes(backend: backend).register(on: router)
        let address = "http://\(configuration.host):\(configuration.port)"
        let logger = self.logger
        let allowedHosts = configuration.allowedHosts
        let authentication = configuration.token == nil ? "no token: anyone who can connect may submit" : "token required"
        let application = Application(
            responder: RequestNormaliser(inner: router.buildResponder()),
            server: configuration.limits.server,
            configuration: configuration.limits.configuration(
                host: configuration.host, port: configuration.port, serverName: "yadtq-web", logger: logger),
            onServerRunning: { _ in
                logger.notice("yadtq-web listening on \(address) (\(authentication); hosts \(allowedHosts))")
            },
            logger: logger)
        try await application.runService()
    }
}
