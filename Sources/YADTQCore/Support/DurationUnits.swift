extension Duration {
    /// The duration in whole milliseconds, the unit librdkafka and Redis timestamps use.
    public var inMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The duration in seconds, for APIs that take a `TimeInterval`.
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension Duration {
    /// Reads a duration as operators write one: `500ms`, `30s`, `5m`, `2h`, `1d`, or a bare
    /// number of seconds (`1.5`), in decimal digits. `nil` for anything else: negative values,
    /// hex (`0x10s`) and exponents included. The one reader of durations for flags, settings
    /// and task declarations.
    public init?(parsing text: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var number = Substring(text)
        var scale = 1.0
        for (suffix, unitScale) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = unitScale
            break
        }
        guard Self.isDecimal(number), let value = Double(number) else { return nil }
        self.init(checkedSeconds: value * scale)
    }

    /// Whether `text` is digits with at most one '.' between digits (`5`, `1.5`): what
    /// `Double` also reads as hex (`0x10`), exponents, signs, `inf` or `nan` is no duration.
    private static func isDecimal(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.allSatisfy { part in !part.isEmpty && part.utf8.allSatisfy { (0x30...0x39).contains($0) } }
    }

    /// Reads a duration a JSON field gives: a string as ``init(parsing:)`` reads it, or a number
    /// of seconds under the same bounds. `nil` for anything else.
    public init?(json value: JSONValue) {
        if case .string(let text) = value {
            self.init(parsing: text)
        } else if let seconds = value.doubleValue {
            self.init(checkedSeconds: seconds)
        } else {
            return nil
        }
    }

    /// The duration as an operator writes one, the inverse of ``init(parsing:)``: a whole number
    /// in the largest unit that gives one (`500ms`, `30s`, `5m`, `1h`, `1d`, `7d`). The one
    /// spelling of a default in help texts, so a default shown is a value the flag takes back.
    /// (``compactText`` is the other way round: a measured age, rounded for a table.)
    public var flagText: String {
        let milliseconds = inMilliseconds
        let units: [(String, Int64)] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
        for (suffix, scale) in units where milliseconds != 0 && milliseconds % scale == 0 {
            return "\(milliseconds / scale)\(suffix)"
        }
        return milliseconds == 0 ? "0s" : "\(milliseconds)ms"
    }

    /// The bound every reader shares: finite, not negative, and under 10^12 s (31,700 years),
    /// so that no duration read from input overflows when counted in milliseconds.
    private init?(checkedSeconds seconds: Double) {
        guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return nil }
        self = .milliseconds(Int64((seconds * 1000).rounded()))
    }
}
