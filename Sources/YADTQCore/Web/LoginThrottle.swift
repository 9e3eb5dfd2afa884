/// The server-wide limit on failed sign-ins of `yadtq-web`'s login form: after
/// ``maximumFailures`` wrong tokens within ``window``, every sign-in is refused (429, with
/// `Retry-After`) without looking at its token, until the oldest of those failures is
/// ``window`` old. Refused attempts do not count, so a client that waits gets its turn.
///
/// Server-wide rather than per client address: behind a proxy every client has the proxy's
/// address, and an attacker with many addresses would get a budget per address. The price is
/// that one who keeps guessing keeps the form closed to everyone, so what matters most never
/// goes through the form: API calls and `/metrics` with the bearer token, and browsers already
/// signed in, are not affected. A correct token is refused too while the form is closed:
/// answering it would tell the guesser which of its guesses was right.
///
/// Pure: times are epoch milliseconds handed in.
public struct LoginThrottle: Sendable {
    /// Wrong tokens within ``window`` that close the form.
    public static let maximumFailures = 10
    /// How long a failure counts, in milliseconds.
    public static let window: Int64 = 60_000

    /// The failures within the window, oldest first: at most ``maximumFailures``.
    private var failures: [Int64] = []

    public init() {}

    /// What a sign-in at `now` gets.
    public enum Decision: Sendable, Equatable {
        /// Check its token.
        case check
        /// Refuse it unchecked; the form opens again in `retryAfter` seconds (at least 1).
        case refuse(retryAfter: Int)
    }

    public mutating func attempt(at now: Int64) -> Decision {
        forget(at: now)
        guard failures.count >= Self.maximumFailures, let oldest = failures.first else { return .check }
        let left = oldest + Self.window - now
        return .refuse(retryAfter: Int(max(1, (left + 999) / 1000)))
    }

    /// A wrong token at `now`; returns whether this failure closed the form.
    public mutating func failed(at now: Int64) -> Bool {
        forget(at: now)
        failures.append(now)
        if failures.count > Self.maximumFailures { failures.removeFirst(failures.count - Self.maximumFailures) }
        return failures.count == Self.maximumFailures
    }

    /// Drops the failures that no longer count at `now`.
    private mutating func forget(at now: Int64) {
        failures.removeAll { now - $0 >= Self.window }
    }
}
