import Foundation

/// One line of task input, with where it came from for error messages.
public struct SourceLine: Sendable {
    /// The file's path, or `-` for standard input.
    public var source: String
    public var number: Int
    public var bytes: [UInt8]
}

/// Reads task files, folders (`*.txt`, sorted) and standard input line by line
/// on a thread of its own, and hands the lines over in batches: whatever has
/// arrived, so a burst is published as one batch and a single line from
/// `tail -f` is published at once.
public final class TaskLineStream: @unchecked Sendable {
    // @unchecked Sendable: `buffer`, `finished` and `problems` are guarded by `condition`.
    private let condition = NSCondition()
    private var buffer: [SourceLine] = []
    private var finished = false
    private var problems: [String] = []
    private let inputs: [String]
    /// Input lines held at most before the reader waits for the publisher.
    private let capacity = 100_000

    /// - Parameter inputs: paths of files or folders; `-` (or no input at all) is standard input.
    public init(inputs: [String]) {
        self.inputs = inputs.isEmpty ? ["-"] : inputs
    }

    public func start() {
        let thread = Thread { [self] in readAll() }
        thread.name = "yadtq-input"
        thread.start()
    }

    /// Waits for at least one line and returns every line available, up to `limit`;
    /// `nil` once every input is exhausted.
    public func nextBatch(limit: Int) -> [SourceLine]? {
        condition.withLock {
            while buffer.isEmpty && !finished { condition.wait() }
            return take(limit)
        }
    }

    /// Every line available now, up to `limit`, without waiting: empty when no line has
    /// arrived yet, `nil` once every input is exhausted.
    public func availableBatch(limit: Int) -> [SourceLine]? {
        condition.withLock { buffer.isEmpty && !finished ? [] : take(limit) }
    }

    /// Must be called with `condition` locked.
    private func take(_ limit: Int) -> [SourceLine]? {
        if buffer.isEmpty { return nil }
        let batch = Array(buffer.prefix(limit))
        buffer.removeFirst(batch.count)
        condition.broadcast()
        return batch
    }

    /// Inputs that could not be read (missing file, unreadable folder), as messages.
    public var inputProblems: [String] { condition.withLock { problems } }

    private func readAll() {
        for path in expandedInputs() {
            read(path)
        }
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    private func expandedInputs() -> [String] {
        var paths: [String] = []
        for input in inputs {
            var isDirectory: ObjCBool = false
            if input != "-", FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue {
                do {
                    let names = try FileManager.default.contentsOfDirectory(atPath: input)
                    paths += names.filter { $0.hasSuffix(".txt") }.sorted().map { input + "/" + $0 }
                } catch {
                    report("\(input): cannot list the folder: \(error.localizedDescription)")
                }
            } else {
                paths.append(input)
            }
        }
        return paths
    }

    private func report(_ problem: String) {
        condition.withLock { problems.append(problem) }
    }

    private func read(_ path: String) {
        guard let file = path == "-" ? fdopen(STDIN_FILENO, "r") : fopen(path, "r") else {
            report("\(path): cannot open: \(String(cString: strerror(errno)))")
            return
        }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var number = 0
        while true {
            let length = getline(&line, &capacity, file)
            guard length >= 0, let line else { break }
            number += 1
            var count = length
            while count > 0, line[count - 1] == 0x0A || line[count - 1] == 0x0D { count -= 1 }
            let bytes = Array(UnsafeRawBufferPointer(start: line, count: count))
            append(SourceLine(source: path, number: number, bytes: bytes))
        }
        if ferror(file) != 0 { report("\(path): read error: \(String(cString: strerror(errno)))") }
    }

    private func append(_ line: SourceLine) {
        condition.withLock {
            while buffer.count >= capacity { condition.wait() }
            buffer.append(line)
            condition.broadcast()
        }
    }
}
