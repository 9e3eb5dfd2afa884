import Foundation
import Testing
import YADTQCore

@Suite("README task file example")
struct ReadmeTaskFileExampleTests {
    /// The code block after the `<!-- task-file-example` marker in README.md.
    private func exampleBlock() throws -> String {
        let readme = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let marker = try #require(text.range(of: "<!-- task-file-example"), "the marker is in README.md")
        let opening = try #require(text.range(of: "```\n", range: marker.upperBound..<text.endIndex))
        let closing = try #require(text.range(of: "\n```", range: opening.upperBound..<text.endIndex))
        return String(text[opening.upperBound..<closing.lowerBound])
    }

    @Test("copied into a file as it is, every line reads, each task with the arguments it means")
    func copyPasteSafe() throws {
        let lines = TaskFileParser.parse(Array(try exampleBlock().utf8))
        var tasks: [TaskDeclaration] = []
        var ends = 0
        for line in lines {
            switch line.result {
            case .success(.task(let declaration)): tasks.append(declaration)
            case .success(.end): ends += 1
            case .success(.blank): break
            case .failure(let error): Issue.record("README line \(line.number) is refused: \(error)")
            }
        }
        #expect(ends == 1)
        #expect(tasks.map(\.type) == ["add", "concat", "mul", "add", "echo"])
        #expect(tasks.map(\.args.count) == [2, 2, 2, 2, 1])
        #expect(tasks.first?.args == [1, 2])
        #expect(tasks.dropFirst().first?.args == ["hello world", "!"])
        #expect(tasks.last?.start == .after(.seconds(30)))
    }
}
