import Foundation

/// One line of task input, read, with where it came from for error messages.
public struct SourceLine: Sendable {
    /// The file's path, or `-` for standard input.
    public var source: String
    public var number: Int
    /// The line, or why it could not be read.
    public var result: Result<TaskLine, TaskLineError>
}

/// Reads task files, folders (`*.txt`, sorted) and standard input on a thread of its
/// own, through ``TaskFileParser`` (the one reader of task input: line breaks, a UTF-8
/// byte order mark at the start, bad lines), and hands the lines over in batches:
/// whatever has arrived, so a burst is published as one batch and a single line from
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

    /// The longest line read (see ``TaskFileParser/maximumLineBytes``).
    private let maximumLineBytes: Int

    /// - Parameters:
    ///   - inputs: paths of files or folders; `-` (or no input at all) is standard input.
    ///   - maximumLineBytes: the producer's largest message (``MessageSizeLimit``): a longer line is refused.
    public init(inputs: [String], maximumLineBytes: Int = MessageSizeLimit.librdkafkaDefault) {
        self.inputs = inputs.isEmpty ? ["-"] : inputs
        self.maximumLineBytes = maximumLineBytes
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
                    let files = names.filter { $0.hasSuffix(".txt") }.sorted()
                    // A folder that gives nothing (its files are .TXT or .tasks, say) is an
                    // input problem, not a run that silently publishes nothing.
                    if files.isEmpty { report(Self.noTaskFiles(in: input, holding: names)) }
                    paths += files.map { input + "/" + $0 }
                } catch {
                    report("\(input): cannot list the folder: \(error.localizedDescription)")
                }
            } else {
                paths.append(input)
            }
        }
        return paths
    }

    /// `DIR: no *.txt file in this folder (it holds a.TXT, b.tasks)`.
    static func noTaskFiles(in folder: String, holding names: [String]) -> String {
        let shown = names.sorted().prefix(10).joined(separator: ", ")
        let more = names.count > 10 ? " and \(names.count - 10) more" : ""
        return "\(folder): no *.txt file in this folder ("
            + (names.isEmpty ? "it is empty)" : "it holds \(shown)\(more))")
    }

    private func report(_ problem: String) {
        condition.withLock { problems.append(problem) }
    }

    private func read(_ path: String) {
        let descriptor = path == "-" ? STDIN_FILENO : open(path, O_RDONLY)
        guard descriptor >= 0 else {
            report("\(path): cannot open: \(String(cString: strerror(errno)))")
            return
        }
        defer { if descriptor != STDIN_FILENO { close(descriptor) } }
        var parser = TaskFileParser(maximumLineBytes: maximumLineBytes)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            // read(2) returns what has arrived, so a line streamed into a pipe goes on at once.
            let count = chunk.withUnsafeMutableBytes { Foundation.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { report("\(path): read error: \(String(cString: strerror(errno)))") }
            guard count > 0 else { break }
            for line in parser.feed(chunk[..<count]) { append(SourceLine(path, line)) }
        }
        if let last = parser.finish() { append(SourceLine(path, last)) }
    }

    private func append(_ line: SourceLine) {
        condition.withLock {
            while buffer.count >= capacity { condition.wait() }
            buffer.append(line)
            condition.broadcast()
        }
    }
}

extension SourceLine {
    init(_ source: String, _ line: TaskFileParser.Line) {
        self.init(source: source, number: line.number, result: line.result)
    }
}
