import Testing
import YADTQCore

/// The task declared by `line`, failing the test if the line is not a task.
private func task(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) -> TaskDeclaration? {
    do {
        guard case .task(let declaration) = try TaskLine.parse(line: line) else {
            Issue.record("\(line) is not a task", sourceLocation: sourceLocation)
            return nil
        }
        return declaration
    } catch {
        Issue.record("\(line) failed: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The error `line` gives, failing the test if it parses.
private func lineError(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) -> TaskLineError? {
    do {
        let parsed = try TaskLine.parse(line: line)
        Issue.record("\(line) parsed as \(parsed) but should fail", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

@Suite("Task lines")
struct TaskLineTests {
    @Test("blank lines and comments", arguments: ["", "   ", "\t", "# comment", "   # indented", "#", "\r", "#add 1 2"])
    func blank(line: String) throws {
        #expect(try TaskLine.parse(line: line) == .blank)
    }

    @Test("end marker", arguments: ["end", "  end", "end  ", "\tend\r"])
    func end(line: String) throws {
        #expect(try TaskLine.parse(line: line) == .end)
    }

    @Test("a line over the limit is refused with its number, without buffering it; the next lines still read")
    func lineTooLong() throws {
        var parser = TaskFileParser(maximumLineBytes: 100)
        var lines: [TaskFileParser.Line] = []
        // A line arriving in pieces, with no line break for a long while.
        for _ in 0..<50 { lines += parser.feed(Array(repeating: UInt8(ascii: "x"), count: 64)) }
        lines += parser.feed(Array("x\nadd 1 2\n".utf8))
        lines += parser.feed(Array(("echo " + String(repeating: "z", count: 200) + "\nadd 3 4").utf8))
        if let last = parser.finish() { lines.append(last) }
        #expect(lines.map(\.number) == [1, 2, 3, 4])
        #expect(lines[0].result.errorReason?.hasPrefix("the line is 3201 bytes long; at most 100") == true)
        #expect(lines[1].result == .success(.task(TaskDeclaration(type: "add", args: [1, 2]))))
        #expect(lines[2].result.errorReason?.hasPrefix("the line is 205 bytes long; at most 100") == true)
        #expect(lines[3].result == .success(.task(TaskDeclaration(type: "add", args: [3, 4]))))
        var tail = TaskFileParser(maximumLineBytes: 10)
        #expect(tail.feed(Array(repeating: UInt8(ascii: "x"), count: 30)).isEmpty)
        #expect(tail.finish()?.result.errorReason?.hasPrefix("the line is 30 bytes long") == true)
    }

    @Test("the message limit is the producer's message.max.bytes, counted as librdkafka counts a message")
    func messageLimit() {
        #expect(MessageSizeLimit(kafkaOverrides: [:]).maximumBytes == 1_000_000)
        let limit = MessageSizeLimit(kafkaOverrides: ["message.max.bytes": "2000"])
        #expect(limit.maximumBytes == 2000)
        #expect(limit.refusal(keyBytes: 36, valueBytes: 1928) == nil)
        #expect(limit.refusal(keyBytes: 36, valueBytes: 1929)?.hasPrefix("task is 2001 bytes as a message; at most 2000") == true)
    }

    @Test func endWithArgumentsIsAnError() throws {
        let error = try #require(lineError("end now"))
        #expect(error.kind == .endWithArguments)
        #expect(error.description.contains("alone on its line"))
    }

    @Test func typeThenJSONArguments() {
        #expect(task("add 1 2") == TaskDeclaration(type: "add", args: [1, 2]))
        #expect(task("  add\t1    2  ") == TaskDeclaration(type: "add", args: [1, 2]))
        #expect(task("noop") == TaskDeclaration(type: "noop", args: []))
        #expect(task("mix 1.5 -3 true false null 1e3") == TaskDeclaration(type: "mix", args: [1.5, -3, true, false, nil, 1000.0]))
    }

    @Test func bareWordsAreStrings() {
        #expect(task("greet hello wörld 01 - 1. tru it's a,b") == TaskDeclaration(
            type: "greet", args: ["hello", "wörld", "01", "-", "1.", "tru", "it's", "a,b"]))
    }

    @Test func quotedStringsMayContainSpaces() {
        #expect(task(#"concat "hello world" "!""#) == TaskDeclaration(type: "concat", args: ["hello world", "!"]))
        #expect(task(#"say "a \"quoted\" word" "tab\there" """#) == TaskDeclaration(
            type: "say", args: ["a \"quoted\" word", "tab\there", ""]))
        #expect(task(#"echo "1""#) == TaskDeclaration(type: "echo", args: ["1"]))
        // An escaped quote does not end the string, so the space after it stays inside.
        #expect(task(#"echo "a \" b" 2"#) == TaskDeclaration(type: "echo", args: ["a \" b", 2]))
    }

    @Test func arraysAndObjectsMayContainSpaces() {
        #expect(task("sum [1, 2, 3]") == TaskDeclaration(type: "sum", args: [[1, 2, 3]]))
        #expect(task(#"cfg {"a": 1}"#) == TaskDeclaration(type: "cfg", args: [["a": 1]]))
        #expect(task(#"deep [ {"k": ["x y", "]"]} , [] ] 7"#) == TaskDeclaration(
            type: "deep", args: [[["k": ["x y", "]"]], []], 7]))
        #expect(task(#"two [1] {"b": "}"}"#) == TaskDeclaration(type: "two", args: [[1], ["b": "}"]]))
    }

    @Test("valid task types", arguments: ["add", "A", "_x", "9lives", "word_count", "v1.2-beta", String(repeating: "t", count: 64)])
    func validTypes(type: String) {
        #expect(TaskDeclaration.isValidType(type))
        #expect(task("\(type) 1")?.type == type)
    }

    @Test("invalid task types", arguments: [
        "-x", ".hidden", "../etc", "a/b", "a\\b", "héllo", "a:b", "a*", String(repeating: "t", count: 65),
        "\"add\"", "[1,2]",
    ])
    func invalidTypes(type: String) throws {
        #expect(!TaskDeclaration.isValidType(type))
        let error = try #require(lineError("\(type) 1"))
        #expect(error.kind == .invalidType)
        #expect(error.reason.contains("plugins/<type>.lua"))
    }

    @Test func unterminatedString() throws {
        let error = try #require(lineError(#"concat "hello world"#))
        #expect(error.kind == .unterminatedString)
        #expect(error.reason == #"unterminated string in argument 1: add the closing '"'"#)
        #expect(lineError(#"concat "ends with escape\"#)?.kind == .unterminatedString)
        #expect(lineError(#"concat ["a]"#)?.kind == .unterminatedString)
    }

    @Test func unclosedBracket() throws {
        let error = try #require(lineError("sum 1 [1, {\"a\": [2"))
        #expect(error.kind == .unclosedBracket)
        #expect(error.reason == "unclosed bracket in argument 2: add the missing ']}]'")
    }

    @Test("structured arguments must be valid JSON", arguments: ["sum [1,,2]", "cfg {a: 1}", #"s "a"b"#, "x [1}", "x [1]]"])
    func invalidStructuredArgument(line: String) throws {
        let error = try #require(lineError(line))
        #expect(error.kind == .invalidArgument)
        #expect(error.reason.contains("argument 1"))
        #expect(error.reason.contains("is not valid JSON"))
    }

    @Test func jsonObjectLine() {
        #expect(task(#"{"type": "mul", "args": [3, 4], "id": "my-id", "max_attempts": 5}"#) == TaskDeclaration(
            id: "my-id", type: "mul", args: [3, 4], maxAttempts: 5))
        #expect(task(#"  {"type":"mul","args":[3,4]}  "#) == TaskDeclaration(type: "mul", args: [3, 4]))
    }

    @Test("a declaration written in the JSON form reads back as it was: how a producer hands tasks back under their ids")
    func jsonFormReadsBack() throws {
        let declarations = [
            TaskDeclaration(type: "ping"),
            TaskDeclaration(id: "my-id", type: "mul", args: [3, ["a": [1, nil]], "x y"], maxAttempts: 5),
            TaskDeclaration(id: "later", type: "echo", args: ["hi"], start: .after(.milliseconds(1500))),
            TaskDeclaration(id: "at", type: "echo", start: .at(1_764_581_400_123)),
        ]
        for declaration in declarations {
            let line = declaration.json.jsonString
            #expect(!line.contains("\n"))
            #expect(task(line) == declaration, "\(line)")
        }
    }

    @Test func jsonObjectLineOptionalFields() {
        #expect(task(#"{"type": "ping"}"#) == TaskDeclaration(type: "ping"))
        #expect(task(#"{"type": "ping", "args": null, "id": null, "max_attempts": null}"#) == TaskDeclaration(type: "ping"))
    }

    @Test func unknownKeysAreRefused() throws {
        let misspelt = try #require(lineError(#"{"type": "add", "args": [1, 2], "max_attemps": 5}"#))
        #expect(misspelt.kind == .unknownKey)
        #expect(misspelt.reason == #"unknown key "max_attemps": did you mean "max_attempts"? A task takes "type", "args", "id", "max_attempts", "delay" and "at""#)
        let other = try #require(lineError(#"{"type": "ping", "priority": 9}"#))
        #expect(other.kind == .unknownKey)
        #expect(other.reason.hasPrefix(#"unknown key "priority". A task takes"#))
        #expect(lineError(#"{"type": "ping", "Delay": "5s"}"#)?.reason.contains(#"did you mean "delay"?"#) == true)
    }

    @Test func legacySeedFormat() {
        #expect(task(#"{"task_id": "...", "task_type": "add", "task_args": ["1", "2"], "task_tries": 0}"#) == TaskDeclaration(
            id: "...", type: "add", args: ["1", "2"]))
        #expect(task(#"{"task_id": "abc", "type": "add", "task_type": "add"}"#) == TaskDeclaration(id: "abc", type: "add"))
    }

    @Test func conflictingKeys() throws {
        let error = try #require(lineError(#"{"type": "add", "task_type": "mul"}"#))
        #expect(error.kind == .conflictingKeys)
        #expect(error.reason.contains("\"type\" and \"task_type\""))
    }

    @Test func missingType() throws {
        let error = try #require(lineError(#"{"args": [1, 2]}"#))
        #expect(error.kind == .missingType)
        #expect(error.reason.contains(#"{"type": "add", "args": [1, 2]}"#))
    }

    @Test("bad JSON types", arguments: [#"{"type": 5}"#, #"{"type": null}"#, #"{"type": "a/b"}"#, #"{"task_type": ""}"#])
    func badJSONType(line: String) {
        #expect(lineError(line)?.kind == .invalidType)
    }

    @Test("args must be an array", arguments: [#"{"type": "add", "args": 1}"#, #"{"type": "add", "args": {"a": 1}}"#, #"{"type": "add", "task_args": "1 2"}"#])
    func argsNotArray(line: String) throws {
        let error = try #require(lineError(line))
        #expect(error.kind == .argsNotArray)
        #expect(error.reason.contains("must be a JSON array"))
    }

    @Test("bad ids", arguments: [
        #""""#, #""has space""#, #""tab\there""#, #""é""#, "5", "[]", "\"" + String(repeating: "i", count: 201) + "\"",
    ])
    func badID(id: String) throws {
        let error = try #require(lineError(#"{"type": "add", "id": \#(id)}"#))
        #expect(error.kind == .invalidID)
        #expect(error.reason.contains("leave \"id\" out"))
    }

    @Test func longestIDIsAccepted() {
        let id = String(repeating: "i", count: 200)
        #expect(task(#"{"type": "add", "id": "\#(id)"}"#)?.id == id)
        #expect(TaskDeclaration.isValidID("a-b_c:d/e.f~!"))
        #expect(!TaskDeclaration.isValidID(""))
    }

    @Test("max_attempts range", arguments: [(1, true), (100, true), (0, false), (101, false), (-1, false)])
    func maxAttemptsRange(count: Int, valid: Bool) {
        let line = #"{"type": "add", "max_attempts": \#(count)}"#
        if valid {
            #expect(task(line)?.maxAttempts == count)
        } else {
            #expect(lineError(line)?.kind == .invalidMaxAttempts)
        }
    }

    @Test("max_attempts must be an integer", arguments: ["3.0", "\"3\"", "true", "99999999999999999999"])
    func maxAttemptsNotInteger(value: String) throws {
        let error = try #require(lineError(#"{"type": "add", "max_attempts": \#(value)}"#))
        #expect(error.kind == .invalidMaxAttempts)
        #expect(error.reason.contains("integer from 1 to 100"))
    }

    @Test("invalid JSON object lines", arguments: [#"{"type": "add""#, #"{"type": "add"} extra"#, "{type: add}", "{"])
    func invalidJSONLine(line: String) throws {
        let error = try #require(lineError(line))
        #expect(error.kind == .invalidJSON)
        #expect(error.reason.hasPrefix("invalid JSON task line: "))
        #expect(error.reason.contains("at byte"))
    }

    @Test func declarationFromJSONValue() throws {
        #expect(try TaskDeclaration(json: ["type": "add", "args": [1, 2]]) == TaskDeclaration(type: "add", args: [1, 2]))
        #expect(throws: TaskLineError.self) { try TaskDeclaration(json: [1, 2]) }
    }

    @Test func invalidUTF8Line() throws {
        #expect(try TaskLine.parse(utf8: Array("add 1 2".utf8)) == .task(TaskDeclaration(type: "add", args: [1, 2])))
        let error = try #require(throws: TaskLineError.self) { try TaskLine.parse(utf8: [0x61, 0x64, 0x64, 0x20, 0xFF] as [UInt8]) }
        #expect(error.kind == .invalidUTF8)
    }

    @Test func substringInput() throws {
        let text = "add 1 2\nend"
        let lines = text.split(separator: "\n")
        #expect(try TaskLine.parse(line: lines[0]) == .task(TaskDeclaration(type: "add", args: [1, 2])))
        #expect(try TaskLine.parse(line: lines[1]) == .end)
    }
}

@Suite("Task files")
struct TaskFileParserTests {
    /// Line number and, for a task, its type; for an error, its kind.
    private enum Summary: Equatable {
        case task(Int, String)
        case end(Int)
        case blank(Int)
        case error(Int, TaskLineError.Kind)
    }

    private func summarize(_ lines: [TaskFileParser.Line]) -> [Summary] {
        lines.map { line in
            switch line.result {
            case .success(.task(let declaration)): .task(line.number, declaration.type)
            case .success(.end): .end(line.number)
            case .success(.blank): .blank(line.number)
            case .failure(let error): .error(line.number, error.kind)
            }
        }
    }

    private let sample = """
        # batch
        add 1 2

        concat "hello world" "!"
        bad/type 1
        {"type": "mul", "args": [3, 4]}
        end
        """

    private var expected: [Summary] {
        [.blank(1), .task(2, "add"), .blank(3), .task(4, "concat"), .error(5, .invalidType), .task(6, "mul"), .end(7)]
    }

    @Test func wholeFileWithoutFinalNewline() {
        #expect(summarize(TaskFileParser.parse(Array(sample.utf8))) == expected)
    }

    @Test func wholeFileWithFinalNewline() {
        #expect(summarize(TaskFileParser.parse(Array((sample + "\n").utf8))) == expected)
    }

    @Test func crlfLineEndings() {
        let crlf = sample.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n") + "\r\n"
        let lines = TaskFileParser.parse(Array(crlf.utf8))
        #expect(summarize(lines) == expected)
        #expect(lines[3].result == .success(.task(TaskDeclaration(type: "concat", args: ["hello world", "!"]))))
    }

    @Test("a carriage return inside a line (old Mac line breaks) is an error, not a space between arguments")
    func carriageReturnInsideALine() throws {
        let lines = TaskFileParser.parse(Array("add 1 2\radd 3 4\r\nadd 5 6\r\n".utf8))
        #expect(lines.count == 2)
        guard case .failure(let error) = lines[0].result else {
            Issue.record("read as \(lines[0].result): one task of the two lines, with their words as arguments")
            return
        }
        #expect(error.reason.contains("carriage return"), "\(error.reason)")
        #expect(lines[1].result == .success(.task(TaskDeclaration(type: "add", args: [5, 6]))))
        #expect(lineError("concat a\rb") != nil)
        #expect(lineError(#"{"type": "add", "args": [1,\#r2]}"#) != nil)
    }

    @Test func emptyInputHasNoLines() {
        #expect(TaskFileParser.parse([UInt8]()).isEmpty)
        #expect(summarize(TaskFileParser.parse(Array("\n\n".utf8))) == [.blank(1), .blank(2)])
    }

    @Test func streamingInAnyChunkSizeGivesTheSameLines() {
        let bytes = Array((sample + "\n").utf8)
        let whole = TaskFileParser.parse(bytes)
        for chunkSize in [1, 2, 3, 7, 64] {
            var parser = TaskFileParser()
            var lines: [TaskFileParser.Line] = []
            var offset = 0
            while offset < bytes.count {
                lines += parser.feed(bytes[offset..<min(offset + chunkSize, bytes.count)])
                offset += chunkSize
            }
            #expect(parser.finish() == nil)
            #expect(lines == whole, "chunk size \(chunkSize)")
        }
    }

    @Test func linesAreReturnedAsSoonAsTheyAreComplete() {
        var parser = TaskFileParser()
        #expect(parser.feed(Array("add 1".utf8)).isEmpty)
        let first = parser.feed(Array(" 2\nend".utf8))
        #expect(first == [TaskFileParser.Line(number: 1, result: .success(.task(TaskDeclaration(type: "add", args: [1, 2]))))])
        #expect(parser.finish() == TaskFileParser.Line(number: 2, result: .success(.end)))
        #expect(parser.finish() == nil)
    }

    @Test func invalidUTF8LineDoesNotStopTheRest() {
        let bytes = Array("add 1\n".utf8) + [0x65, 0xC3, 0x28, 0x0A] + Array("add 2\n".utf8)
        #expect(summarize(TaskFileParser.parse(bytes)) == [.task(1, "add"), .error(2, .invalidUTF8), .task(3, "add")])
    }

    @Test func byteOrderMarkIsSkippedOnlyAtTheStart() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("add 1\n".utf8) + [0xEF, 0xBB, 0xBF] + Array("add 2\n".utf8)
        #expect(summarize(TaskFileParser.parse(bytes)) == [.task(1, "add"), .error(2, .invalidType)])
    }
}

extension Result<TaskLine, TaskLineError> {
    /// The reason of a refused line; `nil` for a line that was read.
    fileprivate var errorReason: String? {
        if case .failure(let error) = self { error.reason } else { nil }
    }
}

@Suite("Task lines: repeated keys and integers beyond 64 bits")
struct TaskLineInputCheckTests {
    @Test("a task line that repeats a key is refused, not run with one of its values; objects as arguments still read")
    func repeatedKeys() throws {
        let error = try #require(lineError(#"{"type":"add","type":"mul"}"#))
        #expect(error.kind == .invalidJSON)
        #expect(error.reason.contains(#"key "type" appears twice"#))
        #expect(lineError(#"cfg {"a": 1, "a": 2}"#)?.kind == .invalidArgument)
        #expect(task(#"cfg {"a": 1, "b": {"a": 2}}"#)?.args == [["a": 1, "b": ["a": 2]]])
        #expect(task(#"{"type": "cfg", "args": [{"a": 1}, {"a": 2}]}"#)?.args == [["a": 1], ["a": 2]])
    }

    @Test("an integer argument beyond 64 bits is refused, naming the argument, in words and in JSON alike")
    func wideIntegerArguments() throws {
        let error = try #require(lineError("add 99999999999999999999999"))
        #expect(error.kind == .integerBeyond64Bits)
        #expect(error.reason == "argument 1 is an integer beyond 64 bits: pass it as a string")
        let refused: [(String, Int)] = [
            ("add 1 -99999999999999999999999", 2),
            ("add 1 2 [1, 18446744073709551616]", 3),
            (#"cfg {"n": 9223372036854775808}"#, 1),
            (#"{"type": "add", "args": [1, 99999999999999999999999]}"#, 2),
            (#"{"task_type": "add", "task_args": [99999999999999999999999]}"#, 1),
            (#"{"type": "add", "args": [[{"x": 99999999999999999999999}]]}"#, 1),
        ]
        for (line, argument) in refused {
            #expect(lineError(line)?.reason == "argument \(argument) is an integer beyond 64 bits: pass it as a string", "\(line)")
        }
    }

    @Test("64-bit integers, floats with a fraction or exponent, quoted digits and words are kept as they are")
    func keptArguments() {
        #expect(task("add 9223372036854775807 -9223372036854775808")?.args == [.int(.max), .int(.min)])
        #expect(task("add 1e23 1.5 99999999999999999999999.0")?.args
            == [.double(1e23), .double(1.5), .double(99999999999999999999999.0)])
        #expect(task(#"add "99999999999999999999999""#)?.args == ["99999999999999999999999"])
        #expect(task(#"{"type": "add", "args": [1e23, 2.5]}"#)?.args == [.double(1e23), .double(2.5)])
        #expect(task("add 99999999999999999999999abc")?.args == ["99999999999999999999999abc"])
    }
}
