import Hummingbird
import HummingbirdCore
import Logging
import YADTQCore

extension ConnectionLimits {
    /// The HTTP/1 server with the idle timeout (Hummingbird's default has none, so an idle
    /// connection would stay open for ever).
    var server: HTTPServerBuilder {
        .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(idleTimeout.inMilliseconds) * 1_000_000)))
    }

    /// The application configuration of a server on `host:port` that serves at most
    /// ``maximumConnections`` at once.
    func configuration(host: String, port: Int, serverName: String, logger: Logger) -> ApplicationConfiguration {
        ApplicationConfiguration(
            address: .hostname(host, port: port), serverName: serverName,
            availableConnectionsDelegate: MaximumAvailableConnections(maximumConnections, logger: logger))
    }
}
