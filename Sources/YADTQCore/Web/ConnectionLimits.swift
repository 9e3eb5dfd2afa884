/// How YADTQ's HTTP servers (`yadtq-web`, a worker's `/metrics`) bound their connections, so
/// that clients that connect and then send nothing, or trickle a request line by line
/// (slowloris), cannot hold every file descriptor for ever and starve the real requests.
/// Every field has the default a user gets without flags.
public struct ConnectionLimits: Sendable, Equatable {
    /// A connection that has not sent a whole request head, or any request part, for this
    /// long (and is not waiting for an answer) is closed. 30 s outlasts any browser or
    /// Prometheus pause between keep-alive requests that matters, and frees a slow client's
    /// descriptor well before an attacker could gather enough of them.
    public var idleTimeout = Duration.seconds(30)
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    /// Kept under the usual 1,024 descriptors per process, so the server can still open its
    /// own connections to Redis and the broker when clients hold all of theirs.
    public var maximumConnections = 512

    public init() {}

    public init(idleTimeout: Duration, maximumConnections: Int) {
        self.idleTimeout = idleTimeout
        self.maximumConnections = maximumConnections
    }

    /// What is wrong with these limits, as the flags name them; `nil` when nothing.
    public var problem: String? {
        if idleTimeout < .milliseconds(100) { return "--idle-timeout must be at least 100ms, e.g. 30s" }
        if maximumConnections < 1 { return "--max-connections must be at least 1" }
        return nil
    }
}
