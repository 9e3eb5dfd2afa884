import Foundation

/// When a task may start, as a declaration's `"delay"` or `"at"` (or `yadtq-run --delay`/`--at`)
/// gives it. A task with a start in the future is SCHEDULED until then; one whose time has
/// passed runs at once (a past `at` is not an error).
public enum TaskStart: Sendable, Hashable {
    /// This long after the task is queued: `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`, or seconds.
    case after(Duration)
    /// At this time, in milliseconds since the epoch.
    case at(Int64)

    /// The time the task is due for a producer that queues it at `now` (epoch milliseconds).
    public func dueAt(now: Int64) -> Int64 {
        switch self {
        case .after(let delay): now + delay.inMilliseconds
        case .at(let time): time
        }
    }

    /// The longest delay, and the furthest `at`, accepted: a year ahead. A later time is far
    /// more likely a unit mistake (seconds for milliseconds) than a plan.
    public static let furthest: Duration = .seconds(366 * 86400)

    // The one validator of each field, for task files, `yadtq-run`'s flags and the web.

    /// Reads a `delay`: a duration string (see ``Swift/Duration/init(parsing:)``) or a JSON
    /// number of seconds.
    public static func readDelay(_ value: JSONValue) throws(TaskLineError) -> TaskStart {
        guard let parsed = Duration(json: value), parsed <= furthest else {
            throw TaskLineError(
                .invalidStart,
                "invalid \"delay\" \(TaskLineError.excerpt(value)): give a duration such as \"500ms\", \"30s\", "
                    + "\"5m\", \"2h\", \"1d\", or a number of seconds, at most 366 days")
        }
        return .after(parsed)
    }

    /// The smallest number an `at` in milliseconds may be: 10^11, March 1973. A smaller one
    /// is far more likely seconds since the epoch (1764581400 for 2025-12-01), which read as
    /// milliseconds is a time in 1970, and the task would run at once without a word.
    public static let earliestNumericAt: Int64 = 100_000_000_000

    /// Reads an `at`: an RFC 3339 time string (`"2026-12-01T09:30:00Z"`, with an offset or
    /// fractional seconds as well) or a JSON number (or string of digits) of milliseconds
    /// since the epoch, from ``earliestNumericAt`` on.
    public static func readAt(_ value: JSONValue, now: Int64 = currentEpochMilliseconds()) throws(TaskLineError) -> TaskStart {
        let (parsed, numeric): (Int64?, Bool) =
            switch value {
            case .string(let text): (epochMilliseconds(text), isDigits(text))
            case .int(let milliseconds): (milliseconds >= 0 ? milliseconds : nil, true)
            default: (nil, false)
            }
        if numeric, let parsed, parsed < earliestNumericAt {
            throw TaskLineError(
                .invalidStart,
                "invalid \"at\" \(TaskLineError.excerpt(value)): this looks like seconds since the epoch: give "
                    + "milliseconds (×1000) or an RFC 3339 time such as \"2026-12-01T09:30:00Z\"")
        }
        guard let parsed, parsed <= now + furthest.inMilliseconds else {
            throw TaskLineError(
                .invalidStart,
                "invalid \"at\" \(TaskLineError.excerpt(value)): give an RFC 3339 time such as "
                    + "\"2026-12-01T09:30:00Z\" (or with an offset, \"+01:00\") or milliseconds since the epoch, "
                    + "at most 366 days ahead")
        }
        return .at(parsed)
    }

    /// An RFC 3339 time, or a string of digits (milliseconds since the epoch), as milliseconds
    /// since the epoch; `nil` when it is neither.
    public static func epochMilliseconds(_ text: String) -> Int64? {
        if isDigits(text) { return Int64(text) }
        // A formatter is made per call: time strings are read once per declaration at most,
        // and a shared one would need a lock.
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
        }
        return nil
    }

    private static func isDigits(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { (ASCIIByte.zero...ASCIIByte.nine).contains($0) }
    }
}
