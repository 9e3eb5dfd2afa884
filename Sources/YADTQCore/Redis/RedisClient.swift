import Foundation
import Logging

/// A connection to Redis, or to every master of a Redis Cluster, that survives restarts and
/// failovers: it reconnects with backoff, replays the failed call, reloads server-side
/// scripts after `NOSCRIPT`, and in a cluster routes each command to the master of its
/// key's hash slot, follows `MOVED` (refreshing the slot map) and `ASK` redirections, and
/// reads the slot map again every ``SlotMapCache/maximumAge`` (see there).
///
/// Replaying a call after a broken connection may run commands twice that had already run:
/// YADTQ's writes are idempotent and its scripts replay-safe (see ``TaskScripts``).
///
/// - Important: Every call blocks the calling thread (up to `reconnectFor` while
///   Redis is away). Call it from a dedicated thread or a `DispatchQueue`, never
///   from Swift's cooperative pool.
final class RedisClient: @unchecked Sendable {
    // @unchecked Sendable: `connections`, `scriptHashes`, `slotMap`, `knownNodes` and
    // `callDeadline` are read and written only while holding `lock`, and a RedisConnection
    // never escapes the lock.
    private let lock = NSLock()
    private var connections: [RedisURL.Node: RedisConnection] = [:]
    /// Script name -> SHA1, the same on every node; a node that does not know it yet answers
    /// `NOSCRIPT` and is sent the source.
    private var scriptHashes: [String: String] = [:]
    /// The slot map of a cluster: read when first needed, after any failure and when it is old.
    private var slotMap = SlotMapCache()
    /// Every node of the latest slot map, kept across failures: when the seeds named in
    /// `YADTQ_REDIS` are down (a failed-over master among them), the others still know the map.
    private var knownNodes: [RedisURL.Node] = []
    let url: RedisURL
    private let logger: Logger
    private let reconnectFor: Duration
    private let boundsEveryCall: Bool
    /// When the call in progress gives up, if `boundsEveryCall`; set by ``withReconnection(_:)``.
    private var callDeadline: ContinuousClock.Instant?
    /// When the calls of the caller's job must give up, however long `reconnectFor` is; set by
    /// ``within(_:_:)``.
    private var jobDeadline: ContinuousClock.Instant?

    /// How long a connect, a send or a reply may take, unless the call's deadline is sooner.
    static let ioTimeout: Duration = .seconds(5)

    /// How long `WAIT` gives a replica to acknowledge a call's writes.
    static let replicaWait: Duration = .seconds(2)
    /// Redirections followed for one command before the call is retried from scratch.
    private static let redirectLimit = 5

    /// - Parameters:
    ///   - reconnectFor: how long to keep retrying while Redis is unreachable before a call
    ///     throws (a worker rides out longer outages by calling again: see ``RedisOutage``).
    ///   - boundsEveryCall: `reconnectFor` bounds a call's whole time, a frozen Redis's
    ///     included: connects, sends and replies wait only what is left of it, where they
    ///     otherwise wait up to ``ioTimeout`` each (a worker's call may wait 2 s for a
    ///     replica, so only callers that owe an answer sooner, the web's requests, set it).
    init(url: RedisURL, logger: Logger, reconnectFor: Duration = .seconds(60), boundsEveryCall: Bool = false) {
        self.url = url
        self.logger = logger
        self.reconnectFor = reconnectFor
        self.boundsEveryCall = boundsEveryCall
    }

    /// Runs `body`, whose calls give up at `deadline` if `reconnectFor` would let them wait
    /// longer: connects, sends and replies wait only what is left of it (at least 100 ms).
    /// - Important: Meant for a client whose calls all come from one serial queue (see
    ///   ``TaskStore/within(_:_:)``): calls from another thread meanwhile would share the deadline.
    func within<T>(_ deadline: ContinuousClock.Instant, _ body: () throws -> T) rethrows -> T {
        lock.withLock { jobDeadline = deadline }
        defer { lock.withLock { jobDeadline = nil } }
        return try body()
    }

    /// Runs a pipeline (one round trip per node), reconnecting and replaying it if a
    /// connection breaks. Error replies come back as `.error` replies, except the transient
    /// ones (`LOADING`, `BUSY`, a cluster failing over), which are retried.
    /// - Parameter waitForReplicas: as for ``evaluate(_:waitForReplicas:)``; the pipeline must
    ///   end with a command that always writes (`EXPIRE` of a key it sets, say), so that `WAIT`
    ///   counts it even when it is replayed.
    func execute(_ commands: [RedisCommand], waitForReplicas: Bool = false) throws -> [RedisReply] {
        lock.lock()
        defer { lock.unlock() }
        return try withReconnection {
            try send(commands.map { Request(command: $0, script: nil, replicationMarker: nil) }, waitForReplicas: waitForReplicas)
        }
    }

    func execute(_ command: RedisCommand) throws -> RedisReply {
        try execute([command])[0]
    }

    /// ``execute(_:)`` for callers that take every reply as a value: the first error reply (a
    /// full Redis refusing a write, a missing permission, a key of another type) is thrown as
    /// "`what` failed", where reading it as a number or a list would take it for 0 or nothing.
    func execute(_ commands: [RedisCommand], or what: String, waitForReplicas: Bool = false) throws -> [RedisReply] {
        let replies = try execute(commands, waitForReplicas: waitForReplicas)
        if let message = replies.lazy.compactMap(\.errorMessage).first {
            throw RedisErrorReply(message).error(
                "\(what) failed", otherRemedy: "Check that no other program stores different types under this namespace's keys")
        }
        return replies
    }

    func execute(_ command: RedisCommand, or what: String) throws -> RedisReply {
        try execute([command], or: what)[0]
    }

    /// Sends a command without a key (`INFO`, ...) to every master: the one Redis, or each
    /// master of a cluster; one reply per master.
    func onEveryMaster(_ command: RedisCommand) throws -> [(node: RedisURL.Node, reply: RedisReply)] {
        lock.lock()
        defer { lock.unlock() }
        return try withReconnection {
            let masters = url.isCluster ? try clusterTopology().masters : [url.nodes[0]]
            return try masters.map { ($0, try connection(to: $0).execute([command])[0]) }
        }
    }

    /// One call of a server-side Lua script.
    struct ScriptCall {
        var script: RedisScript
        /// The keys the script declares (`KEYS`); in a cluster all in one slot, which routes the call.
        var keys: [String]
        var arguments: RedisCommand
        /// A key in the call's slot that a call waiting for replicas writes (see ``send``).
        var replicationMarker: String?
    }

    /// Runs a Lua script with `EVALSHA`, loading it on first use and again after a node
    /// forgot it (a restart answers `NOSCRIPT`).
    func evaluate(_ script: RedisScript, keys: [String] = [], arguments: RedisCommand) throws -> RedisReply {
        try evaluate([ScriptCall(script: script, keys: keys, arguments: arguments)])[0]
    }

    /// Several script calls, pipelined per node.
    /// - Parameter waitForReplicas: in a cluster whose masters have replicas, do not return
    ///   before a replica of each master written to has acknowledged the writes (`WAIT`):
    ///   what the caller then acts on (a Kafka commit) survives the master's death.
    func evaluate(_ calls: [ScriptCall], waitForReplicas: Bool = false) throws -> [RedisReply] {
        lock.lock()
        defer { lock.unlock() }
        return try withReconnection {
            var requests: [Request] = []
            requests.reserveCapacity(calls.count)
            for call in calls {
                var command = RedisCommand("EVALSHA", try scriptHash(call.script), String(call.keys.count))
                for key in call.keys { command.append(key) }
                command.append(contentsOf: call.arguments)
                requests.append(Request(command: command, script: call.script, replicationMarker: call.replicationMarker))
            }
            let replies = try send(requests, waitForReplicas: waitForReplicas)
            for (call, reply) in zip(calls, replies) {
                if let message = reply.errorMessage {
                    throw RedisErrorReply(message).error("Redis script '\(call.script.name)' failed")
                }
            }
            return replies
        }
    }

    /// A command to send, and the script it runs (for `NOSCRIPT`).
    private struct Request {
        var command: RedisCommand
        var script: RedisScript?
        var replicationMarker: String?
    }

    /// The SHA1 of a script, loaded once on any node (it is the same on all of them).
    private func scriptHash(_ script: RedisScript) throws -> String {
        if let hash = scriptHashes[script.name] { return hash }
        let node = url.isCluster ? try clusterTopology().masters[0] : url.nodes[0]
        let hash = try load(script, on: node)
        scriptHashes[script.name] = hash
        return hash
    }

    private func load(_ script: RedisScript, on node: RedisURL.Node) throws -> String {
        let reply = try connection(to: node).execute([RedisCommand("SCRIPT", "LOAD", script.source)])[0]
        guard let hash = reply.text, reply.errorMessage == nil else {
            try Self.throwIfTransient(reply.errorMessage)
            guard let message = reply.errorMessage else {
                throw YADTQError(
                    .redis, "Redis answered SCRIPT LOAD for '\(script.name)' without a hash",
                    remedy: "YADTQ needs Redis 5 or later with scripting enabled")
            }
            var refusal = RedisErrorReply(message)
            if refusal.kind == .other { refusal.kind = .scriptingUnavailable }
            throw refusal.error("Redis refused to load script '\(script.name)'")
        }
        return hash
    }

    /// Sends every request to its node, follows redirections and reloads forgotten scripts;
    /// the replies in request order. Must be called with `lock` held.
    private func send(_ requests: [Request], waitForReplicas: Bool) throws -> [RedisReply] {
        guard !requests.isEmpty else { return [] }
        var replies = [RedisReply?](repeating: nil, count: requests.count)
        // Where each pending request goes: its key's master, or the node an ASK named.
        var pending: [(index: Int, node: RedisURL.Node, asking: Bool)] = try requests.indices.map {
            ($0, try node(for: requests[$0].command), false)
        }
        for _ in 0...Self.redirectLimit {
            guard !pending.isEmpty else { break }
            var next: [(index: Int, node: RedisURL.Node, asking: Bool)] = []
            var movedAway = false
            for (node, group) in Dictionary(grouping: pending, by: \.node) {
                var pipeline: [RedisCommand] = []
                for request in group {
                    if request.asking { pipeline.append(RedisCommand("ASKING")) }
                    pipeline.append(requests[request.index].command)
                }
                let replicas = waitForReplicas && url.isCluster ? (slotMap.latest?.replicaCount(of: node) ?? 0) : 0
                // WAIT counts the replicas that have this connection's latest write, and a
                // replayed script that finds its work done writes nothing: on the new
                // connection of a replay, WAIT would then answer at once, before a replica
                // has the first run's writes. So the pipeline ends with a write of its own,
                // in the slot of a request sent to this node without ASKING.
                let marker = replicas > 0 ? group.lazy.compactMap { $0.asking ? nil : requests[$0.index].replicationMarker }.first : nil
                if let marker { pipeline.append(RedisCommand("SET", marker, String(currentEpochMilliseconds()))) }
                if replicas > 0 { pipeline.append(RedisCommand("WAIT", "1", String(Self.replicaWait.inMilliseconds))) }
                var answers = try connection(to: node).execute(pipeline)[...]
                let acknowledged = replicas > 0 ? answers.popLast() : nil
                let markerReply = marker != nil ? answers.popLast() : nil
                var redirected = false
                for request in group {
                    if request.asking { answers = answers.dropFirst() }
                    let reply = answers.removeFirst()
                    guard let message = reply.errorMessage else {
                        replies[request.index] = reply
                        continue
                    }
                    if let redirect = ClusterRedirect(errorMessage: message, answeredBy: node) {
                        switch redirect {
                        case .moved(_, let target):
                            movedAway = true
                            next.append((request.index, target, false))
                        case .ask(_, let target):
                            next.append((request.index, target, true))
                        }
                        redirected = true
                    } else if message.hasPrefix("NOSCRIPT"), let script = requests[request.index].script {
                        _ = try load(script, on: node)
                        next.append((request.index, node, request.asking))
                    } else if url.isCluster && RedisErrorReply(message).kind == .readOnly {
                        // A master demoted by a failover: ask the cluster again.
                        throw RedisErrorReply("CLUSTERDOWN \(node) is a replica now").error("Redis Cluster failover")
                    } else {
                        try Self.throwIfTransient(message)
                        replies[request.index] = reply
                    }
                }
                if let acknowledged {
                    try Self.checkAcknowledgement(acknowledged, marker: markerReply, of: node, redirected: redirected)
                }
            }
            if movedAway { slotMap.store(try fetchTopology(), readAt: .now) }
            pending = next
        }
        guard pending.isEmpty else {
            throw RedisErrorReply("TRYAGAIN more than \(Self.redirectLimit) redirections").error("Redis Cluster kept redirecting a command")
        }
        return replies.map { $0! }
    }

    /// Whether a replica has what a waited pipeline wrote on `node`, from its `WAIT` reply (and
    /// the marker's before it). Without an acknowledgement the call is retried like a lost
    /// connection: its writes are replay-safe, and replayed until a replica has them. A node
    /// that no longer serves every slot it was sent (a request redirected, or a master demoted
    /// by a failover, which refuses WAIT) ran only part of the call: the slot map is read again.
    private static func checkAcknowledgement(
        _ acknowledged: RedisReply, marker: RedisReply?, of node: RedisURL.Node, redirected: Bool
    ) throws {
        let refusal = acknowledged.errorMessage ?? marker?.errorMessage
        if refusal == nil && (acknowledged.integer ?? 0) >= 1 { return }
        let demoted = acknowledged.errorMessage?.contains("replica") == true
            || marker?.errorMessage.flatMap { ClusterRedirect(errorMessage: $0, answeredBy: node) } != nil
        if redirected || demoted {
            throw RedisErrorReply("CLUSTERDOWN \(node) no longer serves every slot it was sent").error("Redis Cluster slots moved")
        }
        if let refusal { throw RedisErrorReply(refusal).error("\(node) refused the wait for a replica") }
        throw RedisErrorReply.replicaNotAcknowledging(of: node, within: replicaWait).error("writes not yet on a replica")
    }

    /// The master that serves a command's key (a single Redis: its one node).
    private func node(for command: RedisCommand) throws -> RedisURL.Node {
        guard url.isCluster else { return url.nodes[0] }
        let topology = try clusterTopology()
        guard let key = command.routingKey else { return topology.masters[0] }
        let slot = HashSlot(key: key)
        guard let node = topology.master(for: slot) else {
            throw RedisErrorReply("CLUSTERDOWN no node serves slot \(slot.value)").error("Redis Cluster incomplete")
        }
        return node
    }

    /// The slot map to route by, read again when there is none or it is old (see ``SlotMapCache``).
    private func clusterTopology() throws -> ClusterTopology {
        let now = ContinuousClock.now
        if let topology = slotMap.current(at: now) { return topology }
        let fresh = try fetchTopology()
        slotMap.store(fresh, readAt: now)
        return fresh
    }

    /// Asks for the slot map: the nodes of the latest map first (they include every master
    /// after a failover), then the seeds; the first that answers wins.
    private func fetchTopology() throws -> ClusterTopology {
        var lastError: (any Error)?
        var seen: Set<RedisURL.Node> = []
        for node in knownNodes + url.nodes where seen.insert(node).inserted {
            do {
                let reply = try connection(to: node).execute([RedisCommand("CLUSTER", "SLOTS")])[0]
                if let message = reply.errorMessage {
                    throw RedisErrorReply(message).error(
                        "\(node) did not give the cluster's slot map",
                        otherRemedy: "YADTQ_REDIS names several nodes or cluster=yes, so it must be a Redis Cluster")
                }
                let topology = try ClusterTopology(slotsReply: reply, answeredBy: node)
                knownNodes = topology.ranges.flatMap { [$0.master] + $0.replicas }
                return topology
            } catch {
                connections[node] = nil
                lastError = error
            }
        }
        throw lastError ?? YADTQError(.redis, "no Redis Cluster node to ask", remedy: "Name the nodes in YADTQ_REDIS")
    }

    private func connection(to node: RedisURL.Node) throws -> RedisConnection {
        let timeout = ioTimeoutLeft()
        if let connection = connections[node] {
            connection.limit(to: timeout)
            return connection
        }
        let connection = try RedisConnection(url: url.pointing(at: node), timeout: timeout)
        connections[node] = connection
        return connection
    }

    /// ``ioTimeout``, or what is left of the call's deadline when that is sooner (at least
    /// 100 ms, rounded up to 100 ms so that the calls of a steady caller set it once): a
    /// caller that waits 3 s for Redis (the web's requests) is not held 5 s by a frozen
    /// server or a connect that gets no answer.
    private func ioTimeoutLeft() -> Duration {
        guard let callDeadline else { return Self.ioTimeout }
        let left = (callDeadline - ContinuousClock.now).inMilliseconds
        let rounded = max(100, (left + 99) / 100 * 100)
        return min(Self.ioTimeout, .milliseconds(rounded))
    }

    private static func throwIfTransient(_ message: String?) throws {
        guard let message else { return }
        let reply = RedisErrorReply(message)
        if reply.isTransient { throw reply.error("Redis cannot answer yet") }
    }

    /// A restarted Redis answers `LOADING` until it has read its data back, a Redis stuck in a
    /// long script `BUSY`, a cluster failing over `CLUSTERDOWN`: these and transport failures
    /// (hiredis error codes) pass, so they are retried with backoff; any other error reply is final.
    private static func isTransient(_ error: YADTQError) -> Bool {
        error.area == .redis && (error.libraryCode != nil || RedisErrorReply(in: error)?.isTransient == true)
    }

    /// Must be called with `lock` held.
    private func withReconnection<T>(_ body: () throws -> T) throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        let giveUpAt = jobDeadline.map { min($0, start + reconnectFor) } ?? start + reconnectFor
        callDeadline = boundsEveryCall ? giveUpAt : jobDeadline
        defer { callDeadline = nil }
        var delay = Duration.milliseconds(50)
        var reported = false
        while true {
            do {
                let result = try body()
                if reported { logger.notice("Redis at \(url) is reachable again") }
                return result
            } catch let error as YADTQError where Self.isTransient(error) {
                connections.removeAll()
                slotMap.forget()
                if clock.now + delay > giveUpAt { throw error }
                if !reported {
                    logger.warning("\(error); retrying with backoff")
                    reported = true
                }
                Thread.sleep(forTimeInterval: delay.inSeconds)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}

/// A Lua script that runs inside Redis, so each multi-key state change is atomic
/// and a whole batch costs one round trip.
struct RedisScript: Sendable {
    let name: String
    let source: String
}

extension RedisCommand {
    /// Appends every argument of `other`, in bulk.
    mutating func append(contentsOf other: RedisCommand) {
        appendRaw(other.bytes, lengths: other.lengths)
    }
}
