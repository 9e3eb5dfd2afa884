/// Which node of a Redis Cluster serves which hash slots, read from `CLUSTER SLOTS`, and
/// the redirections a node answers with when the map is out of date. Pure values: the
/// client (``RedisClient``) asks for the map and follows the redirections.
public struct ClusterTopology: Sendable, Equatable {
    /// A range of slots, its master and the master's replicas.
    public struct SlotRange: Sendable, Equatable {
        public var slots: ClosedRange<Int>
        public var master: RedisURL.Node
        public var replicas: [RedisURL.Node]

        public init(slots: ClosedRange<Int>, master: RedisURL.Node, replicas: [RedisURL.Node] = []) {
            self.slots = slots
            self.master = master
            self.replicas = replicas
        }
    }

    /// Sorted by first slot.
    public private(set) var ranges: [SlotRange]

    public init(ranges: [SlotRange]) {
        self.ranges = ranges.sorted { $0.slots.lowerBound < $1.slots.lowerBound }
    }

    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ...], [replica...]...], ...]`.
    /// A node listed without a host is on the host of the node that answered (`answeredBy`).
    init(slotsReply reply: RedisReply, answeredBy: RedisURL.Node) throws {
        func node(_ entry: RedisReply) -> RedisURL.Node? {
            let fields = entry.elements
            guard fields.count >= 2, let host = fields[0].text, let port = fields[1].integer else { return nil }
            return RedisURL.Node(endpoint: host, port: Int32(port), answeredBy: answeredBy)
        }
        var ranges: [SlotRange] = []
        for entry in reply.elements {
            let fields = entry.elements
            guard fields.count >= 3, let start = fields[0].integer, let end = fields[1].integer, start <= end,
                let master = node(fields[2])
            else {
                throw YADTQError(
                    .redis, "\(answeredBy) answered CLUSTER SLOTS with an entry YADTQ cannot read",
                    remedy: "Check that YADTQ_REDIS names nodes of a Redis Cluster (Redis 5 or later)")
            }
            ranges.append(
                SlotRange(slots: Int(start)...Int(end), master: master, replicas: fields.dropFirst(3).compactMap(node)))
        }
        guard !ranges.isEmpty else {
            throw YADTQError(
                .redis, "\(answeredBy) serves no hash slots: the cluster is not set up",
                remedy: "Create the cluster (redis-cli --cluster create ...) or point YADTQ_REDIS at a single Redis")
        }
        self.init(ranges: ranges)
    }

    /// The master serving `slot`, or `nil` when no node does (the cluster is incomplete).
    public func master(for slot: HashSlot) -> RedisURL.Node? {
        var low = 0
        var high = ranges.count - 1
        while low <= high {
            let middle = (low + high) / 2
            let range = ranges[middle].slots
            if slot.value < range.lowerBound {
                high = middle - 1
            } else if slot.value > range.upperBound {
                low = middle + 1
            } else {
                return ranges[middle].master
            }
        }
        return nil
    }

    /// How many replicas `master` has (the fewest over its ranges).
    public func replicaCount(of master: RedisURL.Node) -> Int {
        ranges.filter { $0.master == master }.map(\.replicas.count).min() ?? 0
    }

    /// Every master, each once.
    public var masters: [RedisURL.Node] {
        var seen: Set<RedisURL.Node> = []
        return ranges.map(\.master).filter { seen.insert($0).inserted }
    }
}

/// A cluster node's answer that a key lives elsewhere: `MOVED <slot> <host>:<port>` (the
/// slot has moved for good: refresh the map) or `ASK <slot> <host>:<port>` (the slot is
/// being migrated: send this one command there, preceded by `ASKING`). The node named may
/// come without a host (see ``RedisURL/Node/init(endpoint:port:answeredBy:)``).
public enum ClusterRedirect: Equatable, Sendable {
    case moved(HashSlot, RedisURL.Node)
    case ask(HashSlot, RedisURL.Node)

    public init?(errorMessage message: String, answeredBy: RedisURL.Node) {
        let words = message.split(separator: " ")
        guard words.count == 3, let slot = Int(words[1]), let colon = words[2].lastIndex(of: ":"),
            let port = Int32(words[2][words[2].index(after: colon)...])
        else { return nil }
        var host = words[2][..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        let node = RedisURL.Node(endpoint: String(host), port: port, answeredBy: answeredBy)
        switch words[0] {
        case "MOVED": self = .moved(HashSlot(value: slot), node)
        case "ASK": self = .ask(HashSlot(value: slot), node)
        default: return nil
        }
    }
}

extension RedisURL.Node {
    /// A node as a cluster names it in `CLUSTER SLOTS` and redirections. Redis sends an empty
    /// host (`cluster-preferred-endpoint-type unknown-endpoint`) or `?` (a hostname preferred
    /// but not set) for a node whose address it does not announce: it is then on the host of
    /// the node that answered.
    init(endpoint host: String, port: Int32, answeredBy: RedisURL.Node) {
        self.init(host: host.isEmpty || host == "?" ? answeredBy.host : host, port: port)
    }
}
