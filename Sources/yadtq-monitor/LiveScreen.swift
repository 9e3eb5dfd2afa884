import Foundation
import YADTQCore

/// The monitor's screen on a terminal, redrawn in place at each refresh, with the
/// latest verdict changes under the table.
struct LiveScreen {
    private var recentChanges: [VerdictChange] = []
    private var drawnBefore = false
    /// Verdict changes kept on screen, newest last.
    private let changesShown = 8

    mutating func draw(_ snapshot: FleetSnapshot) {
        recentChanges = Array((recentChanges + snapshot.changes).suffix(changesShown))
        let text = FleetTable.render(snapshot, recentChanges: recentChanges)
        // Home the cursor and overwrite each line, clearing what is left of it and
        // everything below: no blank flash between frames, unlike clearing first.
        var frame = drawnBefore ? "\u{1B}[H" : "\u{1B}[H\u{1B}[2J"
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            frame += line + "\u{1B}[K\n"
        }
        frame += "\u{1B}[J"
        drawnBefore = true
        FileHandle.standardOutput.write(Data(frame.utf8))
    }
}
