/// Text from tasks, workers and Redis made safe to print on a terminal: control
/// characters would otherwise reach it as commands (`ESC [2J` clears the screen, a bare
/// `\r` overwrites the line, bidirectional overrides reorder what is shown).
public enum TerminalText {
    /// `text` with every control character written as a visible escape: `\n`, `\t`, `\r`,
    /// `\e` for ESC and `\u{XX}` for the others (C0, DEL, C1 and Unicode's bidirectional
    /// controls). Printable text, including non-ASCII letters, is left as it is.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard isControl(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            case "\r": result += "\\r"
            case "\u{1B}": result += "\\e"
            default: result += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return result
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
