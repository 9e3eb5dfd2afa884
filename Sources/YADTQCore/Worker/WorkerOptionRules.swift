/// The checks of a worker's options (`yadtq-worker`'s name and flags), each saying what is
/// allowed; `nil` when the value is valid.
extension WorkerOptions {
    /// The longest worker name, in bytes: the longest task id.
    public static let maximumNameLength = TaskDeclaration.maximumIDLength
    /// The allowed `--memory-limit`s in MiB: up to 1 TiB, which a Lua state's allocator
    /// counts in bytes without overflow.
    public static let memoryLimitMiB: ClosedRange<Int> = 1...(1 << 20)

    /// The rule of task ids: 1 to ``maximumNameLength`` printable ASCII characters without
    /// whitespace, so that a name is safe in Redis, in a Kafka client id, in a log line and
    /// in the monitor's table. A name whose heartbeat is still fresh is *not* refused: a
    /// worker restarted right after a `kill -9` must start.
    public static func problem(withName name: String) -> String? {
        let rule = "a worker name is 1 to \(maximumNameLength) printable ASCII characters without whitespace"
        if name.isEmpty { return "the worker name is empty: \(rule)" }
        if let bad = name.unicodeScalars.first(where: { !(0x21...0x7E).contains($0.value) }) {
            let shown = bad == " " ? "' '" : "U+\(String(bad.value, radix: 16, uppercase: true))"
            return "the worker name '\(TerminalText.escaped(name))' has \(shown) in it: \(rule)"
        }
        if name.utf8.count > maximumNameLength {
            return "the worker name is \(name.utf8.count) characters long: \(rule)"
        }
        return nil
    }

    /// `--memory-limit`, in MiB.
    public static func problem(withMemoryLimitMiB mebibytes: Int) -> String? {
        guard !memoryLimitMiB.contains(mebibytes) else { return nil }
        return "\(mebibytes) MiB is not a memory limit: give \(memoryLimitMiB.lowerBound) to "
            + "\(memoryLimitMiB.upperBound) MiB (1 TiB)"
    }

    /// `--heartbeat-interval`: at least ``RefreshInterval/shortest``.
    public static func problem(withHeartbeatInterval interval: Duration) -> String? {
        RefreshInterval.problem(with: interval)
    }

    /// `--redis-outage-limit`: more than 0.
    public static func problem(withRedisOutageLimit limit: Duration) -> String? {
        limit > .zero ? nil : "the limit must be more than 0, e.g. 10s"
    }
}
