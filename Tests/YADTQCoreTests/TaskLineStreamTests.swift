import Foundation
import Testing
import YADTQCore

@Suite("Task line stream")
struct TaskLineStreamTests {
    private func lines(of bytes: [UInt8]) throws -> [SourceLine] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-stream-\(UUID().uuidString).txt")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let stream = TaskLineStream(inputs: [file.path])
        stream.start()
        var lines: [SourceLine] = []
        while let batch = stream.nextBatch(limit: 100) { lines += batch }
        return lines
    }

    @Test("a file starting with a UTF-8 byte order mark keeps its first task")
    func byteOrderMark() throws {
        let lines = try lines(of: [0xEF, 0xBB, 0xBF] + Array("add 1 2\r\nmul 3 4".utf8))
        #expect(lines.map(\.number) == [1, 2])
        #expect(try lines[0].result.get() == .task(TaskDeclaration(type: "add", args: [.int(1), .int(2)])))
        #expect(try lines[1].result.get() == .task(TaskDeclaration(type: "mul", args: [.int(3), .int(4)])))
    }

    @Test("lines are read by the task-file parser: a bad line is reported and the rest goes through")
    func badLines() throws {
        let lines = try lines(of: Array("add 1\n".utf8) + [0xFF, 0x0A] + Array("\nend\n".utf8))
        #expect(lines.count == 4)
        #expect(throws: TaskLineError.self) { try lines[1].result.get() }
        #expect(try lines[2].result.get() == .blank)
        #expect(try lines[3].result.get() == .end)
    }

    @Test("a folder without *.txt files is an input problem naming what it holds, not a silent empty run")
    func folderWithoutTaskFiles() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-folder-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["b.tasks", "a.TXT"] { try Data("add 1 2\n".utf8).write(to: folder.appendingPathComponent(name)) }
        let stream = TaskLineStream(inputs: [folder.path])
        stream.start()
        while stream.nextBatch(limit: 100) != nil {}
        #expect(stream.inputProblems == ["\(folder.path): no *.txt file in this folder (it holds a.TXT, b.tasks)"])

        try Data("add 1 2\n".utf8).write(to: folder.appendingPathComponent("c.txt"))
        let withFile = TaskLineStream(inputs: [folder.path])
        withFile.start()
        var count = 0
        while let batch = withFile.nextBatch(limit: 100) { count += batch.count }
        #expect(count == 1 && withFile.inputProblems.isEmpty)
    }
}
