/// The human-readable screen of a ``FleetSnapshot``: a table of workers, then the
/// queue, orphaned tasks, the end marker and the latest verdict changes.
public enum FleetTable {
    /// Task ids longer than a UUID are cut, so one long id does not push the table off screen.
    static let taskColumnWidth = 36
    /// Orphaned task ids listed by name; the rest are counted.
    static let orphansListed = 5

    /// Renders `snapshot` as lines of plain text: no terminal control codes, and any that
    /// worker names, task ids or notes from Redis hold are escaped (see ``TerminalText``).
    /// - Parameter recentChanges: the verdict changes to list under the table, oldest first.
    public static func render(_ snapshot: FleetSnapshot, recentChanges: [VerdictChange] = []) -> String {
        let now = snapshot.at
        var lines = [
            "YADTQ monitor · namespace \(snapshot.namespace) · topic \(snapshot.topic) · "
                + timestampText(epochMilliseconds: now),
            "",
        ]
        var rows = [["WORKER", "VERDICT", "HEARTBEAT", "STATE", "TASK", "RUNNING", "PROCESSED", "FAILED", "PARTITIONS", "LAG", "NOTE"]]
        for worker in snapshot.workers {
            let beat = worker.heartbeat
            rows.append([
                worker.name, worker.verdict.rawValue, worker.heartbeatAge(at: now).compactText + " ago",
                beat.state.rawValue, beat.state == .busy ? cut(beat.currentTask ?? "?") : "-",
                worker.taskRunningTime(at: now)?.compactText ?? "-", String(beat.processed), String(beat.failed),
                beat.partitions.isEmpty ? "-" : beat.partitions.sorted().map(String.init).joined(separator: ","),
                snapshot.lag(of: worker).map(String.init) ?? "-", worker.judgement.reason,
            ])
        }
        if snapshot.workers.isEmpty {
            lines.append("no worker has written a heartbeat in this namespace yet")
        } else {
            lines += columns(rows, rightAligned: [6, 7, 9])
        }
        for problem in snapshot.problems { lines.append("! " + problem) }
        lines.append("")

        let counts = TaskStatus.allCases.map { "\($0.rawValue) \(snapshot.counts[$0] ?? 0)" }.joined(separator: " · ")
        let rate = (snapshot.tasksPerSecond * 10).rounded() / 10
        lines.append(
            "QUEUE     \(counts) · total \(snapshot.totalTasks) · \(rate) tasks/s (last \(snapshot.rateWindowSeconds)s)")
        lines.append("ORPHANED  " + orphanText(snapshot))
        lines.append("LAG       " + lagText(snapshot))
        if let end = snapshot.endOfStream {
            lines.append(
                "END       marker \(end.marker): \(end.reached) of \(end.partitions) partitions drained"
                    + (end.isComplete ? " (complete)" : ""))
        }
        if !recentChanges.isEmpty {
            lines.append("")
            lines.append("CHANGES")
            lines += recentChanges.map { "  \($0)" }
        }
        return lines.map(TerminalText.escaped).joined(separator: "\n") + "\n"
    }

    private static func orphanText(_ snapshot: FleetSnapshot) -> String {
        let count = snapshot.orphanCount
        guard count > 0 else { return "none" }
        var text = snapshot.orphaned.prefix(orphansListed).map { "\($0.id) (\($0.worker))" }.joined(separator: ", ")
        if count > orphansListed { text += ", and \(count - orphansListed) more" }
        let scanned = (snapshot.counts[.processing] ?? 0) > snapshot.orphanScanLimit ? "at least " : ""
        return "\(scanned)\(count): \(text), to be redelivered by Kafka"
    }

    private static func lagText(_ snapshot: FleetSnapshot) -> String {
        guard let lag = snapshot.lag, let total = snapshot.totalLag else { return "unknown (the broker did not answer)" }
        if lag.isEmpty { return "none (topic \(snapshot.topic) does not exist yet)" }
        let behind = lag.filter { $0.lag > 0 }.map { "p\($0.partition) \($0.lag)" }
        return "\(total) messages not yet committed" + (behind.isEmpty ? "" : ": " + behind.joined(separator: ", "))
    }

    private static func cut(_ text: String) -> String {
        text.count <= taskColumnWidth ? text : text.prefix(taskColumnWidth - 1) + "…"
    }

    /// Pads every cell to its column's width; the last column is left ragged.
    private static func columns(_ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        let rows = rows.map { $0.map(TerminalText.escaped) }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.indices.map { column in
                let cell = row[column]
                if column == row.count - 1 { return cell }
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned.contains(column) ? padding + cell : cell + padding
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
