/// Tasks as a plain-text table, one line per task: what `yadtq-run --results` and
/// `yadtq-ctl status|ls` print for people (scripts use `--json`).
public enum TaskTable {
    public static let header = row("TASK", "TYPE", "STATUS", "TRIES", "RESULT / ERROR")

    /// One task's line: the result of a success, else the last error, if any.
    public static func line(_ record: TaskRecord) -> String {
        let outcome = record.status == .success ? record.result?.jsonString ?? "" : record.error ?? ""
        return row(record.id, record.type, record.status.rawValue, "\(record.attempts)/\(record.maxAttempts)", outcome)
    }

    /// The line of a task whose record is gone: it ended and was pruned (its retention over)
    /// before it was read, so how it ended is no longer known.
    public static func pruned(id: String) -> String {
        row(id, "?", "PRUNED", "?", "ended, then pruned before it was read: its outcome is no longer known")
    }

    /// Task text is escaped so it cannot drive the terminal.
    private static func row(_ id: String, _ type: String, _ status: String, _ tries: String, _ outcome: String) -> String {
        func pad(_ raw: String, _ width: Int) -> String {
            let text = TerminalText.escaped(raw)
            return text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
        }
        return pad(id, 37) + pad(type, 10) + pad(status, 11) + pad(tries, 6) + TerminalText.escaped(outcome)
    }
}
