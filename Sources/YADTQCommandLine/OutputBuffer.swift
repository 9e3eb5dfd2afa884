import Foundation

/// Collects output lines and writes them with one system call per batch (or per 64 KiB).
public struct OutputBuffer {
    public init() {}

    private var text = ""

    public mutating func write(_ line: String) {
        text += line
        text += "\n"
        if text.utf8.count > 64 * 1024 { flush() }
    }

    public mutating func flush() {
        guard !text.isEmpty else { return }
        FileHandle.standardOutput.write(Data(text.utf8))
        text = ""
    }
}
