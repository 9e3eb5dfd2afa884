/// Where YADTQ's HTTP servers listen: `yadtq-web`, and a worker's `/metrics`
/// (`yadtq-worker --metrics-port`). Every field has the default a user gets without flags.
public struct ListenAddress: Sendable, Equatable {
    /// Loopback, so that nothing is reachable from another machine until an operator says so:
    /// `yadtq-web` without a token lets anyone who can connect submit tasks.
    public var host = "127.0.0.1"
    /// `yadtq-web`'s port. A worker's `/metrics` has none: it is off until `--metrics-port`.
    public var port = 8080

    public init() {}
}
