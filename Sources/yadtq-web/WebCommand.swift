import ArgumentParser
import Foundation
import YADTQCommandLine
import YADTQCore
import YADTQWeb

@main
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yadtq-web",
        abstract: "Serve the pages to submit and watch tasks, and their JSON API.",
        discussion: """
            Set YADTQ_WEB_TOKEN to require a login on every page and `Authorization: Bearer <token>` \
            on every API call (the token is read from the environment only, so it never shows in `ps`). \
            Without it, anyone who can reach --host:--port may submit tasks: keep the default \
            --host \(ListenAddress().host) then.
            """)

    @Option(help: "Address to listen on: 127.0.0.1 for this machine only, 0.0.0.0 for every interface.")
    var host = ListenAddress().host

    @Option(help: "Port to listen on.")
    var port = ListenAddress().port

    @Option(
        help: """
            Host names the server answers to besides \(HostAllowList.loopback.joined(separator: ", ")) and --host, \
            comma-separated ('.example.com' for a domain and its subdomains, '*' for any); \
            other Host headers get a 400 (env \(HostAllowList.Setting.web.variable)).
            """)
    var allowedHosts: String?

    @Flag(
        help: """
            Mark the session and CSRF cookies Secure, so browsers send them over HTTPS only: for a server \
            behind a TLS proxy, since it speaks plain HTTP itself (env YADTQ_WEB_SECURE_COOKIES=yes).
            """)
    var secureCookies = false

    @Option(help: "Topic submitted tasks are published to (env YADTQ_TOPIC); a retried task goes back to its own.")
    var topic: String?

    @Option(help: "Partitions for the topic when yadtq-web has to create it.")
    var partitions = TaskPublisher.defaultPartitions

    @Option(help: "Plugin folder whose task types the submit form offers and accepts (env YADTQ_PLUGINS).")
    var plugins: String?

    @Option(
        help: """
            Close a connection that has sent no request, or no part of one, for this long, \
            e.g. 30s or 500ms, so idle and slowly trickling clients cannot hold connections for ever.
            """)
    var idleTimeout = ConnectionLimits().idleTimeout

    @Option(help: "Connections served at once; more wait until one closes.")
    var maxConnections = ConnectionLimits().maximumConnections

    @OptionGroup var global: GlobalOptions

    private var limits: ConnectionLimits {
        ConnectionLimits(idleTimeout: idleTimeout, maximumConnections: maxConnections)
    }

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be from 1 to 65535") }
        if let problem = limits.problem { throw ValidationError(problem) }
        guard partitions >= 1 else { throw ValidationError("--partitions must be at least 1") }
        try validateTopic(topic, "--topic")
    }

    func run() async throws {
        let configuration: WebServer.Configuration
        do {
            let environment = ProcessInfo.processInfo.environment
            let settings = try global.settings(flags: ["YADTQ_PLUGINS": plugins, "YADTQ_TOPIC": topic])
            configuration = WebServer.Configuration(
                host: host, port: port, settings: settings, topic: settings.topic, partitions: partitions,
                token: try WebToken.read(from: environment),
                allowedHosts: try HostAllowList.patterns(flag: allowedHosts, of: .web, environment: environment),
                limits: limits, secureCookies: try SecureCookies.isOn(flag: secureCookies, environment: environment))
        } catch {
            exitWithError(error)
        }
        do {
            try await WebServer(configuration: configuration, logger: global.logger(label: "yadtq-web")).run()
        } catch {
            exitWithError(error)
        }
    }
}
