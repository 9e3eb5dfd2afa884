/// Rule: an attempt whose task an operator cancels while it runs is stopped within about half
/// a second. Every ``interval``, and only while attempts run, the worker asks Redis in one call
/// which of its running tasks have a cancel request, and stops each of those attempts once
/// (the stopped attempt ends CANCELLED: see ``TaskBatch``). An idle worker asks nothing.
public struct CancelWatch: Sendable, Equatable {
    /// How often the running tasks are checked: a cancel takes effect within this plus one
    /// Redis round trip and the sandbox's next check (at most 50 ms in `task.sleep`).
    public static let interval = Duration.milliseconds(250)

    /// Running tasks already stopped: they are not asked about (or stopped) again.
    private var stopped: Set<String> = []

    public init() {}

    /// The tasks whose attempts run now; returns those to ask Redis about, sorted (none: skip
    /// the call).
    public mutating func check(running: some Sequence<String>) -> [String] {
        let running = Set(running)
        stopped.formIntersection(running)  // forget attempts that have ended
        return running.subtracting(stopped).sorted()
    }

    /// Redis answered that `requested` of the `asked` tasks have a cancel request; returns the
    /// attempts to stop now.
    public mutating func answered(_ requested: Set<String>, asked: [String]) -> [String] {
        let stop = asked.filter(requested.contains)
        stopped.formUnion(stop)
        return stop
    }
}
