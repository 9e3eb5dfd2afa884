/// When a caller that owes its client an answer within a budget (a web request, 3 s) must have
/// it, counted from the request's arrival, not from when its Redis call starts: the calls of
/// one store run one at a time, so a call queued behind others during a Redis stall would
/// otherwise wait for each of them, then its own full budget (3 s × N for the Nth).
public struct CallDeadline: Sendable, Equatable {
    public let instant: ContinuousClock.Instant

    /// `budget` after `arrival`.
    public init(budget: Duration, from arrival: ContinuousClock.Instant) {
        instant = arrival + budget
    }

    /// Whether a call that reaches the front of its queue at `now` must fail at once, without
    /// touching Redis: its time went on waiting for the calls ahead of it.
    public func hasPassed(at now: ContinuousClock.Instant) -> Bool {
        now >= instant
    }

    /// The error of a call that ``hasPassed(at:)``: nothing of it reached Redis (the web
    /// answers it 503, and a submit's tasks are then known not to have been queued by it).
    public struct Expired: Error, CustomStringConvertible, Sendable {
        public init() {}

        public var description: String {
            YADTQError(
                .redis, "Redis is not answering: the time for this call ran out while the calls ahead of it waited, so it was not sent",
                remedy: "Check that Redis is running and not stalled (a full disk, a long script, a paused process), then try again"
            ).description
        }
    }
}
