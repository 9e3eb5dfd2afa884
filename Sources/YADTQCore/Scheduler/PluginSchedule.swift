/// When a plugin's periodic tasks are due: its metadata's `every = "30s"` or
/// `cron = "*/5 * * * *"`. A pure value: the scheduler asks it for the latest tick at or
/// before a time, and every worker computes the same ticks, so a tick's task id
/// (``tickID(type:tick:)``) is the same on every worker and the "an id is queued once" rule
/// queues it once across the fleet.
public enum PluginSchedule: Sendable, Hashable {
    /// Ticks at every multiple of the interval since the epoch (`every = "1h"` ticks on the
    /// hour, UTC), whenever the scheduler started.
    case every(Duration)
    /// Ticks at the start of every minute the expression matches, in UTC.
    case cron(CronExpression)

    /// The shortest `every`: shorter ones would flood the queue and Redis with ticks.
    public static let shortestInterval: Duration = .seconds(1)

    /// Reads a plugin's `every` and `cron`; `nil` when it declares neither.
    public init?(every: String?, cron: String?) throws(ScheduleError) {
        switch (every, cron) {
        case (nil, nil):
            return nil
        case (_?, _?):
            throw ScheduleError("declare 'every' or 'cron', not both")
        case (let text?, nil):
            guard let interval = Duration(parsing: text), interval >= Self.shortestInterval else {
                throw ScheduleError(
                    "'every' must be a duration of at least 1s, such as \"30s\", \"5m\", \"2h\" or \"1d\", not \"\(text)\"")
            }
            self = .every(interval)
        case (nil, let text?):
            self = .cron(try CronExpression(parsing: text))
        }
    }

    /// The ticks from `start` through `end` (epoch milliseconds), oldest first.
    public func ticks(from start: Int64, through end: Int64) -> [Int64] {
        var ticks: [Int64] = []
        var next = nextTick(after: start - 1)
        while let tick = next, tick <= end {
            ticks.append(tick)
            next = nextTick(after: tick)
        }
        return ticks
    }

    /// The first tick after `time` (epoch milliseconds); `nil` when a cron expression matches
    /// no day within four years (`0 0 31 2 *`).
    public func nextTick(after time: Int64) -> Int64? {
        switch self {
        case .every(let interval):
            let step = interval.inMilliseconds
            return time - ((time % step) + step) % step + step
        case .cron(let expression):
            return expression.nextMatch(after: time)
        }
    }

    /// The task id of the tick at `tick` (epoch ms) of task type `type`: `<type>@<UTC time>`, as
    /// `report@2026-12-01T09:05:00.000Z`. It is a valid task id: printable ASCII, no spaces,
    /// at most 64 + 1 + 24 bytes.
    public static func tickID(type: String, tick: Int64) -> String {
        type + "@" + timestampText(epochMilliseconds: tick)
    }

    /// The text the plugin declared it with, as `every 30s` or `cron */5 * * * *`.
    public var description: String {
        switch self {
        case .every(let interval): "every \(UTCTime.durationText(interval))"
        case .cron(let expression): "cron \(expression.text)"
        }
    }
}

extension PluginSchedule: Codable {
    // Encoded as its description, for the plugin list workers publish to Redis.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        let parsed: PluginSchedule?? =
            if text.hasPrefix("every ") { try? PluginSchedule(every: String(text.dropFirst(6)), cron: nil) }
            else if text.hasPrefix("cron ") { try? PluginSchedule(every: nil, cron: String(text.dropFirst(5))) }
            else { nil }
        guard let parsed = parsed ?? nil else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a schedule: \(text)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Why a plugin's schedule does not read; the plugin then fails to load with this reason.
public struct ScheduleError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A five-field cron expression, `minute hour day-of-month month day-of-week`, read in UTC.
/// Each field is `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a list of
/// those separated by commas. Day of week is 0–7 (0 and 7 are Sunday). As in every cron, when
/// both day fields are restricted a day matching either one matches.
public struct CronExpression: Sendable, Hashable {
    /// The expression as written.
    public let text: String
    private let minutes: Set<Int>
    private let hours: Set<Int>
    private let daysOfMonth: Set<Int>
    private let months: Set<Int>
    private let daysOfWeek: Set<Int>
    private let dayOfMonthRestricted: Bool
    private let dayOfWeekRestricted: Bool

    public init(parsing text: String) throws(ScheduleError) {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 5 else {
            throw ScheduleError(
                "'cron' needs five fields (minute hour day-of-month month day-of-week, UTC), such as \"*/5 * * * *\"; "
                    + "\"\(text)\" has \(fields.count)")
        }
        self.text = fields.joined(separator: " ")
        minutes = try Self.field(fields[0], "minute", 0...59)
        hours = try Self.field(fields[1], "hour", 0...23)
        daysOfMonth = try Self.field(fields[2], "day of month", 1...31)
        months = try Self.field(fields[3], "month", 1...12)
        daysOfWeek = Set(try Self.field(fields[4], "day of week", 0...7).map { $0 % 7 })
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
    }

    /// Whether the minute starting at `time` (epoch ms, a whole minute) matches.
    public func matches(minuteStartingAt time: Int64) -> Bool {
        let moment = UTCTime(epochMilliseconds: time)
        return minutes.contains(moment.minute) && hours.contains(moment.hour) && matchesDay(moment)
    }

    private func matchesDay(_ moment: UTCTime) -> Bool {
        guard months.contains(moment.month) else { return false }
        let byMonth = daysOfMonth.contains(moment.day)
        let byWeek = daysOfWeek.contains(moment.weekday)
        return dayOfMonthRestricted && dayOfWeekRestricted ? byMonth || byWeek : byMonth && byWeek
    }

    /// The start of the first matching minute after `time`, within four years.
    func nextMatch(after time: Int64) -> Int64? {
        let day: Int64 = 86_400_000
        var minute = time - ((time % 60_000) + 60_000) % 60_000 + 60_000
        let limit = time + 4 * 366 * day
        while minute <= limit {
            let moment = UTCTime(epochMilliseconds: minute)
            if !matchesDay(moment) {
                minute = minute - ((minute % day) + day) % day + day  // the next day's midnight
            } else if minutes.contains(moment.minute) && hours.contains(moment.hour) {
                return minute
            } else {
                minute += 60_000
            }
        }
        return nil
    }

    /// The values one field allows.
    private static func field(_ text: Substring, _ name: String, _ range: ClosedRange<Int>) throws(ScheduleError) -> Set<Int> {
        var values = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            func bad(_ why: String) -> ScheduleError {
                ScheduleError("'cron' \(name) field \"\(text)\": \(why) (allowed: \(range.lowerBound)-\(range.upperBound), *, a-b, */n, a-b/n, lists)")
            }
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw bad("more than one '/' in \"\(part)\"") }
            var step = 1
            if pieces.count == 2 {
                guard let number = Int(pieces[1]), number >= 1 else { throw bad("the step \"\(pieces[1])\" is not a positive number") }
                step = number
            }
            let span = pieces[0]
            var low = range.lowerBound
            var high = range.upperBound
            if span != "*" {
                let bounds = span.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, let first = Int(bounds[0]), range.contains(first) else {
                    throw bad("\"\(span)\" is not a number in range, '*' or a range a-b")
                }
                low = first
                if bounds.count == 2 {
                    guard let last = Int(bounds[1]), range.contains(last), last >= first else {
                        throw bad("\"\(span)\" is not a range a-b with a ≤ b in range")
                    }
                    high = last
                } else if pieces.count == 1 {
                    high = first  // a single number; `a/n` runs from a to the end
                }
            }
            values.formUnion(stride(from: low, through: high, by: step))
        }
        return values
    }
}

/// A UTC calendar time computed from epoch milliseconds, without Foundation's calendars (the
/// days-from-civil algorithm of Howard Hinnant): the same answer on every machine whatever its
/// time zone.
struct UTCTime: Equatable {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int
    /// 0 for Sunday through 6 for Saturday.
    var weekday: Int

    init(epochMilliseconds time: Int64) {
        let dayLength: Int64 = 86_400_000
        let days = Int((time - ((time % dayLength) + dayLength) % dayLength) / dayLength)
        let within = Int(time - Int64(days) * dayLength)
        hour = within / 3_600_000
        minute = within / 60_000 % 60
        second = within / 1000 % 60
        millisecond = within % 1000
        weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    /// `2026-12-01T09:05:00.250Z` (RFC 3339, always with milliseconds).
    var rfc3339: String {
        func digits(_ value: Int, _ count: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, count - text.count)) + text
        }
        return "\(digits(year, 4))-\(digits(month, 2))-\(digits(day, 2))T\(digits(hour, 2)):\(digits(minute, 2)):"
            + "\(digits(second, 2)).\(digits(millisecond, 3))Z"
    }

    /// A duration as operators write it: `30s`, `5m`, `2h`, `1d`, else milliseconds.
    static func durationText(_ duration: Duration) -> String {
        let milliseconds = duration.inMilliseconds
        for (suffix, unit) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        where milliseconds % unit == 0 {
            return "\(milliseconds / unit)\(suffix)"
        }
        return "\(milliseconds)ms"
    }
}
