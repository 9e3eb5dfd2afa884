/// Error texts as YADTQ stores and forwards them: a task's error can be any size (a plugin
/// may raise a megabyte), but its record in Redis and its dead-letter copy on Kafka must
/// stay far below the broker's message size.
public enum ErrorText {
    /// The longest error text kept, in UTF-8 bytes.
    public static let maximumBytes = 64 * 1024

    /// `text` if it fits in `limit` bytes; otherwise its beginning, cut at a character
    /// boundary, followed by a note that says it was trimmed and by how much.
    public static func trimmed(_ text: String, limit: Int = maximumBytes) -> String {
        let utf8 = text.utf8
        guard utf8.count > limit else { return text }
        let note = "… [error trimmed: \(utf8.count) bytes, the first \(limit) kept, \(utf8.count - limit) left out]"
        return prefix(text, bytes: limit) + note
    }

    /// At most `bytes` UTF-8 bytes from the start of `text`, never half a character.
    static func prefix(_ text: String, bytes: Int) -> String {
        let utf8 = Array(text.utf8)
        guard utf8.count > bytes else { return text }
        var end = max(0, bytes)
        // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
        while end > 0, utf8[end] & 0xC0 == 0x80 { end -= 1 }
        return String(decoding: utf8[..<end], as: UTF8.self)
    }
}
