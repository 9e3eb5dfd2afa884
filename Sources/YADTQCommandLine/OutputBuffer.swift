import Foundation
import Synchronization

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
        StandardOutput.write(text)
        text = ""
    }
}

/// Standard output, whose reader may go away while a command still has work to do
/// (`yadtq-run tasks.txt | head -1`).
public enum StandardOutput {
    /// Whether a write failed (nothing more is written then), and what is said about it.
    private static let state = Mutex((isClosed: false, notice: "standard output is closed: nothing more is printed"))

    /// Makes a write to a closed standard output fail instead of raising SIGPIPE, whose default
    /// action kills the process at once and silently, in the middle of its work: the command
    /// goes on, prints nothing more, and says `notice` once on standard error.
    public static func keepGoingWhenClosed(notice: String) {
        signal(SIGPIPE, SIG_IGN)
        state.withLock { $0.notice = notice }
    }

    static func write(_ text: String) {
        guard !state.withLock({ $0.isClosed }) else { return }
        do {
            try FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
        } catch {
            let notice = state.withLock { state in
                state.isClosed = true
                return state.notice
            }
            let reason = posixCode(of: error as NSError).map { String(cString: strerror($0)) } ?? "\(error)"
            FileHandle.standardError.write(Data("\(notice) (\(reason))\n".utf8))
        }
    }

    /// The POSIX error behind `error`: Foundation reports a failed write as a Cocoa error
    /// (`NSFileWriteUnknownError`) with the `errno` (EPIPE) under `NSUnderlyingErrorKey`.
    private static func posixCode(of error: NSError) -> Int32? {
        if error.domain == NSPOSIXErrorDomain { return Int32(error.code) }
        return (error.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap(posixCode(of:))
    }
}
