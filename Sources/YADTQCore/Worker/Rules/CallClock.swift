/// Rule: the times a worker stamps its `begin` and `finish` calls with (epoch milliseconds),
/// and a publisher its batches' `queued_at`, are strictly increasing, even when several calls fall in one millisecond of the wall
/// clock or the wall clock steps back. The scripts tell a replayed call (the same pipeline
/// sent again after a broken connection) from a new one by these times: `begin` answers an
/// attempt this worker started at this very `now` again instead of counting another, and
/// `finish` answers an outcome this worker wrote for this attempt at this very `now`
/// without writing it again. With `--retry-delay 0s` an attempt's failure, the next
/// attempt's begin and its outcome can fall in one millisecond: read from the wall clock
/// alone, that next attempt would be taken for a replay of the previous call (begun twice
/// under one number, or its outcome never written).
///
/// A time runs ahead of the wall clock only while calls come faster than one a millisecond,
/// or after the wall clock stepped back (then by at most that step, until it catches up).
public struct CallClock: Sendable, Equatable {
    private var last: Int64?

    public init() {}

    /// The time of the next call, given the wall clock's `wall`: `wall`, or one past the
    /// previous call's time when that is not earlier.
    public mutating func next(wall: Int64) -> Int64 {
        let now = last.map { max(wall, $0 + 1) } ?? wall
        last = now
        return now
    }
}
