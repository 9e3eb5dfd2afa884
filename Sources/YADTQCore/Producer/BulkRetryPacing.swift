/// Whether a bulk retry that owes its answer by `deadline` (a web request: 3 s) starts its
/// next chunk of tasks: only while twice the longest chunk so far still fits before it. A
/// chunk the deadline cut off would fail the whole request, answered 503 with the chunks
/// before it done and no word of which; stopping between chunks answers what was done and
/// that more match (send it again). The first chunk always starts, so each request gets on.
public struct BulkRetryPacing: Sendable, Equatable {
    public let deadline: ContinuousClock.Instant
    private var longestChunk: Duration = .zero
    private var chunks = 0

    public init(deadline: ContinuousClock.Instant) {
        self.deadline = deadline
    }

    public func startsChunk(at now: ContinuousClock.Instant) -> Bool {
        chunks == 0 || now + longestChunk * 2 <= deadline
    }

    public mutating func chunkEnded(taking duration: Duration) {
        chunks += 1
        longestChunk = max(longestChunk, duration)
    }
}
