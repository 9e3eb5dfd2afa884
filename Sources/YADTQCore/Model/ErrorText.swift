/// Error texts as YADTQ stores and forwards them: a task's error can be any size (a plugin
/// may raise a megabyte), but its record in Redis and its dead-letter copy on Kafka must
/// stay far below the broker's message size.
///
/// The one rule for cutting any text YADTQ keeps from a plugin (errors, tracebacks, log
/// lines): at most `limit` UTF-8 bytes in all, the note included, so that a caller budgets
/// with `limit` alone; the cut falls on a character boundary; and the note gives the
/// original length and what was kept: `… [trimmed: 1100000 bytes, the first 65486 kept]`
/// (`at least 4097 bytes` when the caller has only the beginning and not the whole length).
public enum ErrorText {
    /// The longest error text kept, in UTF-8 bytes, the note included.
    public static let maximumBytes = 64 * 1024

    /// `text` if it fits in `limit` UTF-8 bytes; otherwise its beginning, cut at a character
    /// boundary, and the note, together at most `limit` bytes.
    public static func trimmed(_ text: String, limit: Int = maximumBytes) -> String {
        let length = text.utf8.count
        return length <= limit ? text : cut(text, length: length, limit: limit)
    }

    /// How much of a text a buffer given to ``trimmed(_:limit:extent:)`` holds: what the note
    /// says of the text's length.
    public enum Extent: Sendable, Equatable {
        /// The buffer is the whole text.
        case whole
        /// The buffer is the beginning of a text of this many bytes (a Lua error message, which
        /// the sandbox's message handler cuts before Swift sees it, telling its length).
        case beginning(ofBytes: Int)
        /// The buffer may be the beginning of a text of unknown length: a log line is built
        /// only up to one byte past the room the log has left, so one that fits is whole and one
        /// that does not is noted as `at least` its bytes.
        case unknown
    }

    /// The text of `bytes` (UTF-8 as Lua hands it over, invalid sequences replaced), whole if
    /// that fits in `limit` bytes, else cut like ``trimmed(_:limit:)``. Only the bytes that can
    /// be kept are decoded, since Lua code can raise a string of megabytes. With invalid
    /// sequences the kept count is of the text after replacement (a replaced byte takes three).
    public static func trimmed(_ bytes: UnsafeRawBufferPointer, limit: Int, extent: Extent = .whole) -> String {
        let end = characterBoundary(in: bytes, atMost: limit)
        let head = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
        let length = if case .beginning(let length) = extent { max(length, bytes.count) } else { bytes.count }
        if end == bytes.count && head.utf8.count <= limit && length == bytes.count { return head }
        return cut(head, length: length, exact: extent != .unknown, limit: limit)
    }

    /// The beginning of `text` and the note for a text of `length` bytes (`exact`, or at
    /// least that many), at most `limit` bytes.
    private static func cut(_ text: String, length: Int, exact: Bool = true, limit: Int) -> String {
        // Room for the note with the widest count it can hold (at most `limit` kept), so the
        // kept part and the actual note never pass `limit` together.
        let room = note(length: length, exact: exact, kept: limit).utf8.count
        // A limit too small for the note (a log line where the log is nearly full) gets the
        // beginning alone, which keeps the guarantee.
        guard room <= limit else { return prefix(text, bytes: limit) }
        let kept = prefix(text, bytes: limit - room)
        return kept + note(length: length, exact: exact, kept: kept.utf8.count)
    }

    private static func note(length: Int, exact: Bool, kept: Int) -> String {
        "… [trimmed: \(exact ? "" : "at least ")\(length) bytes, the first \(kept) kept]"
    }

    /// At most `bytes` UTF-8 bytes from the start of `text`, never half a character.
    static func prefix(_ text: String, bytes: Int) -> String {
        guard text.utf8.count > bytes else { return text }
        var text = text
        return text.withUTF8 { utf8 in
            let all = UnsafeRawBufferPointer(utf8)
            return String(decoding: UnsafeRawBufferPointer(rebasing: all[..<characterBoundary(in: all, atMost: bytes)]), as: UTF8.self)
        }
    }

    /// The length of the longest beginning of `bytes` that is at most `limit` bytes and does not
    /// end inside a character: the one place that finds where UTF-8 may be cut.
    private static func characterBoundary(in bytes: UnsafeRawBufferPointer, atMost limit: Int) -> Int {
        guard bytes.count > limit else { return bytes.count }
        var end = max(0, limit)
        // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
        while end > 0, UTF8.isContinuation(bytes[end]) { end -= 1 }
        return end
    }
}
