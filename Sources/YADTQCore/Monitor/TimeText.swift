import Foundation

extension Duration {
    /// A short human reading for tables and reasons: `850ms`, `4.2s`, `3m04s`, `2h05m`.
    public var compactText: String {
        let milliseconds = inMilliseconds
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        if milliseconds < 60_000 {
            let tenths = (milliseconds + 50) / 100
            return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
        }
        let seconds = milliseconds / 1000
        func twoDigits(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        if seconds < 3600 { return "\(seconds / 60)m\(twoDigits(seconds % 60))s" }
        return "\(seconds / 3600)h\(twoDigits(seconds % 3600 / 60))m"
    }
}

/// `2025-06-01T12:00:05.123Z` for a time in milliseconds since the epoch: the
/// timestamp of the monitor's screen and change log, in UTC so hosts agree.
public func timestampText(epochMilliseconds: Int64) -> String {
    UTCTime(epochMilliseconds: epochMilliseconds).rfc3339
}
