import Foundation
import Testing
import YADTQCore

// yadtq-run publishes batch N+1's QUEUED writes and Kafka messages while it reads and
// prepares batch N+2: these check that the pipelining keeps input order, reports every
// task, and still answers a streamed line at once.
@Suite("Producer", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct ProducerTests {
    @Test("12,001 lines over three batches: ids printed in input order, each QUEUED once, a repeat reported")
    func manyBatchesInOrder() throws {
        let stack = try IntegrationStack(label: "producer-order")
        let count = 12_001
        var lines = (0..<count).map { #"{"id": "order-\#($0)", "type": "add", "args": [\#($0), 1]}"# }
        // A repeat of an id from the first batch, in the third: not published again.
        lines.append(#"{"id": "order-7", "type": "add", "args": [0, 0]}"#)
        let run = try stack.run(input: lines.joined(separator: "\n") + "\n")
        #expect(run.status == 0, "yadtq-run: \(run.stderr.suffix(500))")
        let printed = run.stdout.split(separator: "\n").map(String.init)
        let expected = (0..<count).map { "order-\($0)" } + ["order-7 (already exists, not published again)"]
        #expect(printed == expected, "ids in input order, the repeat last (\(printed.count) printed)")
        let ids = (0..<count).map { "order-\($0)" }
        let records = try stack.records(ids)
        #expect(records.allSatisfy { $0?.status == .queued }, "every task QUEUED")
        #expect(records[7]?.args == .array([.int(7), .int(1)]), "the first declaration of a repeated id wins")
        #expect(records[count - 1]?.args == .array([.int(Int64(count - 1)), .int(1)]))
        let counts = try stack.store.counts()
        #expect(counts[.queued] == count)
    }

    @Test("a UTF-8 byte order mark at the start of standard input or a file is dropped: the first task goes through")
    func byteOrderMark() throws {
        let stack = try IntegrationStack(label: "producer-bom")
        func lines(_ first: Int) -> [UInt8] {
            [0xEF, 0xBB, 0xBF] + Array((first...first + 1).map { #"{"id": "bom-\#($0)", "type": "add", "args": [1, 2]}"# + "\n" }.joined().utf8)
        }
        let piped = try stack.run(input: lines(1))
        #expect(piped.status == 0, "yadtq-run: \(piped.stderr.suffix(500))")
        #expect(piped.stdout.split(separator: "\n") == ["bom-1", "bom-2"])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-bom-\(UUID().uuidString).txt")
        try Data(lines(3)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let read = try stack.run(input: [], arguments: [file.path])
        #expect(read.status == 0, "yadtq-run: \(read.stderr.suffix(500))")
        #expect(read.stdout.split(separator: "\n") == ["bom-3", "bom-4"])
    }

    @Test("a line streamed through a pipe is published and its id printed before the next line arrives")
    func streamedLineAnsweredAtOnce() throws {
        let stack = try IntegrationStack(label: "producer-stream")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: stack.binDirectory + "/yadtq-run")
        process.arguments = ["--topic", stack.topic]
        process.environment = stack.environment
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = try IntegrationStack.artifact("\(stack.settings.namespace)-run.log")
        try process.run()
        let reader = LineReader(output.fileHandleForReading)
        for index in 1...3 {
            let id = "streamed-\(index)"
            input.fileHandleForWriting.write(Data(#"{"id": "\#(id)", "type": "add", "args": [\#(index), 1]}"#.utf8 + [10]))
            let line = reader.nextLine(timeout: .seconds(20))
            #expect(line == id, "line \(index) answered while the pipe stays open")
            #expect(try stack.store.statuses(of: [id]) == [.queued])
        }
        try input.fileHandleForWriting.close()
        #expect(IntegrationStack.waitForExit(process, timeout: .seconds(20)) == 0)
    }
}

/// Reads lines from a pipe on a thread of its own, so a test can wait for one with a timeout.
private final class LineReader: @unchecked Sendable {
    // @unchecked Sendable: `lines` and `buffer` are guarded by `condition`.
    private let condition = NSCondition()
    private var lines: [String] = []
    private var buffer: [UInt8] = []

    init(_ handle: FileHandle) {
        let thread = Thread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                condition.withLock {
                    buffer += data
                    while let newline = buffer.firstIndex(of: 10) {
                        lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
                        buffer.removeSubrange(...newline)
                    }
                    condition.broadcast()
                }
            }
        }
        thread.start()
    }

    /// The next line, or `nil` when none arrives within `timeout`.
    func nextLine(timeout: Duration) -> String? {
        let deadline = Date().addingTimeInterval(timeout.inSeconds)
        return condition.withLock {
            while lines.isEmpty {
                if !condition.wait(until: deadline) { return nil }
            }
            return lines.removeFirst()
        }
    }
}
