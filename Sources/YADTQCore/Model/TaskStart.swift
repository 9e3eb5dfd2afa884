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

    /// Reads an `at`: an RFC 3339 time string (see ``epochMilliseconds(_:)``) or a JSON number
    /// (or string of digits) of milliseconds since the epoch, from ``earliestNumericAt`` on.
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
        guard let parsed else {
            throw TaskLineError(
                .invalidStart,
                "invalid \"at\" \(TaskLineError.excerpt(value)): give a time that exists as YYYY-MM-DDTHH:MM:SS, "
                    + "an optional fraction (.250), then Z or an offset ±HH:MM, such as \"2026-12-01T09:30:00Z\" "
                    + "or \"2026-12-01T10:30:00+01:00\"; or milliseconds since the epoch")
        }
        guard parsed <= now + furthest.inMilliseconds else {
            throw TaskLineError(
                .invalidStart,
                "invalid \"at\" \(TaskLineError.excerpt(value)): it is more than 366 days ahead: give a time "
                    + "within a year from now")
        }
        return .at(parsed)
    }

    /// An RFC 3339 time, or a string of digits (milliseconds since the epoch), as milliseconds
    /// since the epoch; `nil` when it is neither.
    ///
    /// The time has exactly the shape `YYYY-MM-DDTHH:MM:SS`, an optional fraction, then `Z` or
    /// an offset `±HH:MM` (hours to 23, minutes to 59), and names a time that exists: no
    /// 30 February, hour 24 or second 60. Foundation's ISO 8601 reader would roll such a
    /// date over (30 February is 2 March) and take shorter fields, running a task at a time
    /// nobody wrote.
    public static func epochMilliseconds(_ text: String) -> Int64? {
        if isDigits(text) { return Int64(text) }
        let shape = /([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(?:Z|([+-])([0-9]{2}):([0-9]{2}))/
        guard let match = text.wholeMatch(of: shape) else { return nil }
        let written = [match.1, match.2, match.3, match.4, match.5, match.6].compactMap { Int($0) }
        let components = DateComponents(
            year: written[0], month: written[1], day: written[2], hour: written[3], minute: written[4], second: written[5])
        // The calendar rolls what does not exist over: the time exists when it reads back as written.
        guard let date = utcCalendar.date(from: components) else { return nil }
        let read = utcCalendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        guard [read.year, read.month, read.day, read.hour, read.minute, read.second] == written.map(Optional.some) else {
            return nil
        }
        var offsetSeconds: Int64 = 0
        if let sign = match.8, let hours = match.9.flatMap({ Int64($0) }), let minutes = match.10.flatMap({ Int64($0) }) {
            guard hours <= 23, minutes <= 59 else { return nil }
            offsetSeconds = (sign == "-" ? -1 : 1) * (hours * 3600 + minutes * 60)
        }
        let fraction = match.7.flatMap { Double("0" + $0) } ?? 0
        return (Int64(date.timeIntervalSince1970) - offsetSeconds) * 1000 + Int64((fraction * 1000).rounded())
    }

    /// The Gregorian calendar in UTC, which an RFC 3339 time's fields are read in before its offset.
    private static let utcCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar
    }()

    private static func isDigits(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { (ASCIIByte.zero...ASCIIByte.nine).contains($0) }
    }
}
