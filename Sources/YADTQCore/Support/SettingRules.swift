import Logging

/// The shortest period of anything YADTQ repeats on a timer at an operator's choice
/// (`yadtq-worker --heartbeat-interval`, `yadtq-monitor --interval`): a shorter one turns the
/// timer into a busy loop (a heartbeat of 0 s wrote some 10,000 times a second), and a
/// heartbeat judged over twice its interval would never count as fresh.
public enum RefreshInterval {
    public static let shortest: Duration = .milliseconds(100)

    /// What is wrong with `interval`, in a sentence that says what is allowed; `nil` when nothing.
    public static func problem(with interval: Duration) -> String? {
        guard interval < shortest else { return nil }
        return "\(interval.inMilliseconds)ms is too short: give at least \(shortest.inMilliseconds)ms, e.g. 5s"
    }
}

/// How a command's log is written: `--log-level` / `YADTQ_LOG_LEVEL` and `--log-format` /
/// `YADTQ_LOG_FORMAT`, read in any case. An unknown value is refused, naming the known ones,
/// rather than silently falling back to the default.
public enum LogSettings {
    /// The log levels, least severe first.
    public static let levels = Logger.Level.allCases.map(\.rawValue)
    /// The log formats: `text`, or `json` for one JSON object per line.
    public static let formats = ["text", "json"]

    /// The level `text` names; `source` (`--log-level` or `YADTQ_LOG_LEVEL`) is named in the error.
    public static func level(parsing text: String, source: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw YADTQError(
                .configuration, "\(source)='\(TerminalText.escaped(text))' is not a log level",
                remedy: "Give one of " + levels.joined(separator: ", ") + " (in any case)")
        }
        return level
    }

    /// Whether `text` asks for JSON lines; `source` is named in the error.
    public static func isJSON(parsing text: String, source: String) throws -> Bool {
        let format = text.lowercased()
        guard formats.contains(format) else {
            throw YADTQError(
                .configuration, "\(source)='\(TerminalText.escaped(text))' is not a log format",
                remedy: "Give " + formats.joined(separator: " or ") + " (in any case)")
        }
        return format == "json"
    }
}
