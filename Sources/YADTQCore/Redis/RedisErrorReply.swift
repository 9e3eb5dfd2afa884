/// A Redis error reply (`-OOM command not allowed ...`) read into what it means for YADTQ
/// and what the operator should do, so every caller names the real cause the same way.
public struct RedisErrorReply: Sendable, Equatable {
    /// What kind of refusal it is, from the reply's first word.
    public enum Kind: String, Sendable, Equatable {
        /// `OOM`: Redis is at its `maxmemory` and refuses writes.
        case outOfMemory
        /// `NOAUTH`: Redis needs a password and none was given.
        case authenticationRequired
        /// `WRONGPASS` (or an `ERR invalid password`): the password or user is wrong.
        case wrongPassword
        /// `NOPERM`: the user may not run this command.
        case noPermission
        /// `READONLY`: connected to a replica.
        case readOnly
        /// `LOADING`: a restarted Redis is reading its data back.
        case loading
        /// `BUSY`: a script has run too long and blocks the server.
        case busy
        /// `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`: a Redis Cluster is failing over or
        /// migrating a slot.
        case clusterUnavailable
        /// `NOSCRIPT`: Redis does not know the script's hash (after a restart).
        case noScript
        /// `MISCONF`: Redis cannot write its snapshot, so it refuses writes.
        case persistenceFailing
        /// `NOREPLICAS`: fewer replicas are connected than the master's `min-replicas-to-write`,
        /// so it refuses writes.
        case tooFewReplicas
        /// `ERR max number of clients reached`: Redis has `maxclients` connections open and
        /// refused a new one.
        case tooManyClients
        /// A script met a key of a slot being moved to another master (`Script attempted to
        /// access a non local key`): a resharding under running workers or producers.
        case slotMoving
        /// Scripting is not available (an unknown `EVAL`/`EVALSHA`/`SCRIPT` command).
        case scriptingUnavailable
        /// A master's replica did not acknowledge a worker's writes (`WAIT` answered 0): the
        /// replica is down, frozen or far behind and still in the slot map. Not a reply of
        /// Redis's own: YADTQ's client says it (see ``replicaNotAcknowledging(of:within:)``).
        case replicaNotAcknowledging
        /// Anything else.
        case other
    }

    public var kind: Kind
    /// The reply exactly as Redis sent it.
    public var message: String

    public init(_ message: String) {
        self.message = message
        if let kind = Self.kind(ofCode: message.prefix { $0 != " " }) {
            self.kind = kind
            return
        }
        // Before Redis 7, a command refused inside a script comes back wrapped:
        // `ERR Error running script (call to f_...): @user_script:12: -OOM command not allowed ...`.
        if let wrapped = message.range(of: ": -"),
            let kind = Self.kind(ofCode: message[wrapped.upperBound...].prefix { $0 != " " })
        {
            self.kind = kind
            return
        }
        let lowered = message.lowercased()
        if lowered.contains("invalid password") || lowered.contains("invalid username-password") {
            kind = .wrongPassword
        } else if lowered.contains("unknown command") && Self.scriptCommands.contains(where: lowered.contains) {
            kind = .scriptingUnavailable
        } else if lowered.contains("max number of clients reached") {
            kind = .tooManyClients
        } else if lowered.contains("attempted to access a non local key") {
            kind = .slotMoving
        } else if message.hasPrefix(Self.notAcknowledgedOpening) {
            kind = .replicaNotAcknowledging
        } else {
            kind = .other
        }
    }

    /// The kind an error code (a reply's first word) names; nil for `ERR` and unknown codes.
    private static func kind(ofCode code: Substring) -> Kind? {
        switch code {
        case "OOM": .outOfMemory
        case "NOAUTH": .authenticationRequired
        case "WRONGPASS": .wrongPassword
        case "NOPERM": .noPermission
        case "READONLY": .readOnly
        case "LOADING": .loading
        case "BUSY": .busy
        case "NOSCRIPT": .noScript
        case "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN": .clusterUnavailable
        case "MISCONF": .persistenceFailing
        case "NOREPLICAS": .tooFewReplicas
        default: nil
        }
    }

    private static let scriptCommands = ["'eval", "'evalsha", "'script"]

    /// What the client says when no replica of `node` acknowledged a waited pipeline within
    /// `wait` (its kind is read back from the text, as an error carries only the text).
    public static func replicaNotAcknowledging(of node: RedisURL.Node, within wait: Duration) -> RedisErrorReply {
        RedisErrorReply("\(notAcknowledgedOpening) of \(node) acknowledged the writes within \(wait)")
    }

    private static let notAcknowledgedOpening = "NOACK no replica"

    /// The refusal an error carries, when Redis answered one (a transport failure carries
    /// none: it has the C library's code instead).
    public init?(in error: any Error) {
        guard let error = error as? YADTQError, error.area == .redis, error.libraryCode == nil,
            let message = error.libraryMessage
        else { return nil }
        self.init(message)
    }

    /// Whether waiting and trying again can succeed without anyone acting (a client at
    /// `maxclients` gets in once another one leaves).
    public var isTransient: Bool {
        kind == .loading || kind == .busy || kind == .clusterUnavailable || kind == .tooManyClients
            || kind == .replicaNotAcknowledging
    }

    /// Whether the refusal comes from the state of Redis itself (full, unable to persist,
    /// loading, blocked), so that every client meets it alike. A wrong password, a replica or
    /// a missing permission are one client's own; and a cluster that is down may be down only
    /// on this client's side of a network split, while the majority side fails over; and a
    /// Redis at `maxclients` refuses only new connections, so the clients connected go on.
    /// A replica that does not acknowledge fails every worker writing to its master alike.
    public var refusesEveryClient: Bool {
        switch kind {
        case .outOfMemory, .persistenceFailing, .tooFewReplicas, .loading, .busy, .replicaNotAcknowledging: true
        case .clusterUnavailable, .tooManyClients, .slotMoving, .authenticationRequired, .wrongPassword,
            .noPermission, .readOnly, .noScript, .scriptingUnavailable, .other:
            false
        }
    }

    /// What the refusal means, in one phrase.
    public var meaning: String {
        switch kind {
        case .outOfMemory: "Redis is full (it reached its maxmemory limit)"
        case .authenticationRequired: "Redis needs a password and YADTQ_REDIS gives none"
        case .wrongPassword: "Redis refused the user or password in YADTQ_REDIS"
        case .noPermission: "the Redis user of YADTQ_REDIS may not run YADTQ's commands"
        case .readOnly: "YADTQ_REDIS points at a read-only replica"
        case .loading: "Redis is loading its data set after a restart"
        case .busy: "Redis is blocked by a long-running script"
        case .noScript: "Redis forgot a YADTQ script"
        case .clusterUnavailable: "the Redis Cluster is failing over or moving slots"
        case .persistenceFailing: "Redis cannot save its data to disk, so it refuses writes"
        case .tooFewReplicas: "Redis has fewer replicas connected than its min-replicas-to-write, so it refuses writes"
        case .tooManyClients: "Redis has as many connections open as its maxclients allows, so it refused a new one"
        case .slotMoving:
            "a Redis Cluster slot of YADTQ's keys is being moved to another master, and the script stopped midway"
        case .scriptingUnavailable: "this Redis has no Lua scripting"
        case .replicaNotAcknowledging:
            "a replica of the master did not acknowledge the writes (it is down, frozen or far behind, and still in the slot map)"
        case .other: "Redis refused the command"
        }
    }

    /// What the operator should do.
    public var remedy: String {
        switch kind {
        case .outOfMemory:
            "Raise Redis's maxmemory (CONFIG SET maxmemory ...) or shorten retention "
                + "(YADTQ_KEEP_SUCCEEDED, YADTQ_KEEP_FAILED) or purge old tasks, then try again"
        case .authenticationRequired:
            "Put the password in the URL: YADTQ_REDIS=redis://:PASSWORD@host:port/db, "
                + "or redis://USER:PASSWORD@host:port/db for an ACL user"
        case .wrongPassword:
            "Check the user and password in YADTQ_REDIS (redis://[USER]:PASSWORD@host:port/db) against Redis's "
                + "requirepass or its ACL users (ACL LIST)"
        case .noPermission:
            "Give the user access to every command and key under the YADTQ namespace (ACL SETUSER), or use another user"
        case .readOnly:
            "Point YADTQ_REDIS at the primary, not at a replica"
        case .loading, .busy, .clusterUnavailable:
            "Nothing to do: the call is retried until Redis answers"
        case .noScript:
            "Nothing to do: the script is loaded again"
        case .persistenceFailing:
            "Fix Redis's disk (see its log: free space, permissions), or set stop-writes-on-bgsave-error no"
        case .tooFewReplicas:
            "Bring the master's replicas back (INFO replication lists those connected), "
                + "or lower its min-replicas-to-write (CONFIG SET min-replicas-to-write ...)"
        case .tooManyClients:
            "Raise Redis's maxclients (CONFIG SET maxclients ..., within its open-files limit), or run fewer "
                + "YADTQ processes (each keeps a few connections to every node) or other clients (CLIENT LIST shows "
                + "them); meanwhile the call is retried until Redis lets it in"
        case .slotMoving:
            "Moving slots while YADTQ writes is not supported. Stop the workers and producers, "
                + "reshard (redis-cli --cluster reshard), then start them again"
        case .scriptingUnavailable:
            "YADTQ needs Redis 5 or later with scripting enabled"
        case .replicaNotAcknowledging:
            "Nothing to do if the replica is restarting: workers keep their partitions and retry, and once the cluster "
                + "marks the replica failed (after cluster-node-timeout) writes no longer wait for it. Otherwise bring "
                + "the replica back, or remove it (redis-cli --cluster del-node)"
        case .other:
            "This is a YADTQ bug; please report it with this message"
        }
    }

    /// The error a caller throws: `what` failed because of this reply.
    /// - Parameter otherRemedy: the advice for a reply of kind ``Kind/other``, when the
    ///   caller knows better than "report a bug".
    public func error(_ what: String, otherRemedy: String? = nil) -> YADTQError {
        YADTQError(
            .redis, "\(what): \(meaning)", libraryMessage: message,
            remedy: kind == .other ? otherRemedy ?? remedy : remedy)
    }
}
