/// How full one Redis master is. A full Redis refuses every write (with `noeviction`, which
/// workers require), and then nothing moves until retention or an operator frees room, so
/// the monitor and `yadtq-ctl stats` say so before it happens.
public struct RedisMemory: Sendable, Equatable {
    public var node: RedisURL.Node
    /// `used_memory`, bytes.
    public var used: Int64
    /// `maxmemory`, bytes; 0 when Redis has no limit (it grows until the machine runs out).
    public var limit: Int64

    public init(node: RedisURL.Node, used: Int64, limit: Int64) {
        self.node = node
        self.used = used
        self.limit = limit
    }

    /// The share of `maxmemory` in use, or `nil` without a limit.
    public var fullness: Double? { limit > 0 ? Double(used) / Double(limit) : nil }

    /// At or past `maxmemory`: Redis refuses writes now.
    private var isFull: Bool { limit > 0 && used >= limit }

    /// From this share of `maxmemory` on, the fleet is warned.
    public static let warningFullness = 0.9

    /// One line: `12.3 MiB of 20.0 MiB maxmemory (61 %)` (`full` at the limit), or `12.3 MiB (no maxmemory)`.
    public var summary: String {
        let used = Self.mebibytes(used)
        guard let fullness else { return "\(used) (no maxmemory)" }
        let share = isFull ? "full" : "\(Int((fullness * 100).rounded(.down))) %"
        return "\(used) of \(Self.mebibytes(limit)) maxmemory (\(share))"
    }

    /// The warning to show, when Redis is nearly or entirely full.
    public var warning: String? {
        guard let fullness, fullness >= Self.warningFullness else { return nil }
        let state = isFull ? "is full and refuses writes" : "is nearly full"
        return "Redis at \(node) \(state): \(summary). Shorten retention (YADTQ_KEEP_SUCCEEDED, YADTQ_KEEP_FAILED), "
            + "purge old tasks (yadtq-ctl purge) or raise maxmemory"
    }

    /// As `yadtq-ctl stats --json` and the web's `/api/stats` give it.
    public var json: JSONValue {
        .object(["node": .string(node.description), "used_bytes": .int(used), "maxmemory_bytes": .int(limit)])
    }

    private static func mebibytes(_ bytes: Int64) -> String {
        let value = Double(bytes) / 1_048_576
        let tenths = (value * 10).rounded()
        return "\(Int(tenths) / 10).\(Int(tenths) % 10) MiB"
    }
}
