import YADTQCore

/// When the web server reads the consumer lag from the broker again, and what a request is
/// answered meanwhile. Reading it takes a round trip to the broker, up to its 2 s timeout when
/// the broker is frozen or refuses, and the reads run one at a time; `/metrics`, the dashboard
/// and `/api/stats` all want it. So:
/// - a read started less than ``freshFor`` ago (done or not) is not started again: requests
///   share it, and a dead broker is asked once per ``freshFor``, not once per request;
/// - a request waits for the read in flight at most ``answerWithin`` (the caller's timer),
///   then is answered ``fallback(at:)``: the last lag read, if it is under ``maximumAge``
///   old, else none (`nil`, as when the broker cannot tell).
///
/// Pure: times are epoch milliseconds handed in; the caller reads the broker and keeps the
/// timers (``LagSource``).
public struct LagCache: Sendable {
    /// Readings this recent answer without asking the broker again.
    public static let freshFor: Int64 = 1_000
    /// How long a request waits for a read in flight before it is answered from the cache.
    public static let answerWithin = Duration.milliseconds(500)
    /// A lag older than this is not shown: better no lag than one that misleads.
    public static let maximumAge: Int64 = 60_000

    /// The last lag read, and when (epoch milliseconds).
    public private(set) var last: (lag: [PartitionLag], at: Int64)?
    /// When the latest read started, whatever its outcome.
    public private(set) var startedAt: Int64?
    /// Whether a read is in flight.
    public private(set) var isReading = false

    public init() {}

    /// What a request for the lag does.
    public enum Decision: Sendable, Equatable {
        /// Answer this at once.
        case answer([PartitionLag]?)
        /// Start a read (the caller must then call ``finished(_:at:)``) and wait for it.
        case read
        /// Wait for the read in flight.
        case wait
    }

    /// A request for the lag at `now`.
    public mutating func request(at now: Int64) -> Decision {
        if isReading { return .wait }
        if let startedAt, now - startedAt < Self.freshFor { return .answer(fallback(at: now)) }
        isReading = true
        startedAt = now
        return .read
    }

    /// The read in flight ended at `now`: with the lag, or `nil` when the broker did not tell.
    public mutating func finished(_ lag: [PartitionLag]?, at now: Int64) {
        isReading = false
        if let lag { last = (lag, now) }
    }

    /// The answer from the cache at `now`: the last lag read, if under ``maximumAge`` old.
    public func fallback(at now: Int64) -> [PartitionLag]? {
        guard let last, now - last.at < Self.maximumAge else { return nil }
        return last.lag
    }
}
