// Task declaration files (`tasks.d/*.txt` or stdin), one declaration a line:
//
//     # a comment takes a whole line; blank lines are skipped
//     # type, then arguments: each token is read as JSON, a bare word is a string
//     add 1 2
//     concat "hello world" "!"
//     {"type": "mul", "args": [3, 4], "id": "my-id", "max_attempts": 5}
//     # "delay", or "at": "2026-12-01T09:30:00Z"
//     {"type": "add", "args": [1, 2], "delay": "30s"}
//     {"task_id": "...", "task_type": "add", "task_args": ["1", "2"], "task_tries": 0}
//     end

/// A task as a producer declares it, before it is queued.
public struct TaskDeclaration: Sendable, Hashable {
    /// The task id; `nil` lets the producer generate one.
    public var id: String?
    /// The task type, which names its plugin: `plugins/<type>.lua`.
    public var type: String
    /// The arguments handed to the plugin.
    public var args: [JSONValue]
    /// How many attempts the task gets; `nil` means the plugin's or the default.
    public var maxAttempts: Int?
    /// When the task may start (`"delay"` or `"at"`); `nil` means at once.
    public var start: TaskStart?

    public init(id: String? = nil, type: String, args: [JSONValue] = [], maxAttempts: Int? = nil, start: TaskStart? = nil) {
        self.id = id
        self.type = type
        self.args = args
        self.maxAttempts = maxAttempts
        self.start = start
    }

    /// The longest allowed task type, in bytes.
    public static let maximumTypeLength = 64
    /// The longest allowed task id, in bytes.
    public static let maximumIDLength = 200
    /// The allowed values of ``maxAttempts``.
    public static let allowedMaxAttempts: ClosedRange<Int> = 1...100

    /// Whether `type` is a valid task type: `[A-Za-z0-9_][A-Za-z0-9_.-]*`, at
    /// most ``maximumTypeLength`` characters. The type becomes a file name, so
    /// the rule keeps out path separators, `..` and hidden files.
    public static func isValidType(_ type: some StringProtocol) -> Bool {
        let utf8 = type.utf8
        guard let first = utf8.first, utf8.count <= maximumTypeLength, isWordByte(first) else { return false }
        return utf8.allSatisfy { isWordByte($0) || $0 == ASCIIByte.dot || $0 == ASCIIByte.minus }
    }

    /// Why `type`, given to narrow a listing, a purge or a retry to one task type, cannot
    /// name one (`'a b' is not a task type name ...`); `nil` when it can. The one check of
    /// `yadtq-ctl ls/purge/retry --type`, the web API's `?type=` and a retry filter's `type`.
    public static func typeFilterProblem(_ type: some StringProtocol) -> String? {
        isValidType(type) ? nil : "'\(type)' is not a task type name (a plugin file's name without .lua)"
    }

    /// Whether `id` is a valid task id: 1 to ``maximumIDLength`` printable
    /// ASCII characters without whitespace, so it is safe inside a Redis key,
    /// a log line and a URL path segment.
    public static func isValidID(_ id: some StringProtocol) -> Bool {
        let utf8 = id.utf8
        return (1...maximumIDLength).contains(utf8.count) && utf8.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// Refuses an argument nested deeper than ``TaskMessage/maximumArgumentDepth``, which
    /// the workers could not read back from the task message.
    static func checkDepth(of argument: JSONValue, number: Int) throws(TaskLineError) {
        let depth = argument.nestingDepth
        guard depth > TaskMessage.maximumArgumentDepth else { return }
        throw TaskLineError(
            .nestedTooDeep,
            "argument \(number) nests arrays and objects \(depth) levels deep; a task's arguments may nest at most "
                + "\(TaskMessage.maximumArgumentDepth) levels (the task message around them takes 2 of the "
                + "\(JSONValue.maximumNestingDepth) a worker reads): flatten it")
    }

    /// Refuses an integer literal beyond 64 bits in a task's JSON text, which the parser
    /// would otherwise round to a floating-point number (`99999999999999999999999` queued as
    /// `1e+23`): an order number must arrive with every digit, so it is passed as a string.
    /// Floats with a fraction or an exponent are left as they are.
    ///
    /// `text` parsed to `value`. With `argument`, `text` is that argument (a task line's
    /// token); without, it is a task object or an array of them (the web API's body), and
    /// the integer's place in it names the argument.
    public static func checkIntegers(
        in text: some Collection<UInt8>, parsed value: JSONValue, argument: Int? = nil
    ) throws(TaskLineError) {
        // Only a document holding a floating-point number can hold a wide integer.
        guard value.holdsDouble else { return }
        let path: [JSONParseError.PathComponent]
        do {
            _ = try JSONValue(parsing: text, wideIntegers: .refuse)
            return
        } catch {
            guard error.kind == .integerBeyond64Bits else { return }
            path = error.path
        }
        if let argument { throw wideIntegerError(argument: argument) }
        var place = path[...]
        var task = ""
        if case .array(let tasks) = value, case .index(let index)? = place.first {
            place = place.dropFirst()
            if tasks.count > 1 { task = "task \(index + 1): " }
        }
        switch (place.first, place.dropFirst().first) {
        case (.key(let key)?, .index(let index)?) where key == "args" || key == "task_args":
            var error = wideIntegerError(argument: index + 1)
            error.reason = task + error.reason
            throw error
        case (.key(let key)?, _):
            throw TaskLineError(
                .integerBeyond64Bits, task + "\(TaskLineError.excerpt(.string(key))) holds an integer beyond 64 bits")
        default:
            throw TaskLineError(.integerBeyond64Bits, task + "an integer beyond 64 bits: pass it as a string")
        }
    }

    private static func wideIntegerError(argument: Int) -> TaskLineError {
        TaskLineError(.integerBeyond64Bits, "argument \(argument) is an integer beyond 64 bits: pass it as a string")
    }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             ASCIIByte.zero...ASCIIByte.nine, UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    /// Reads a task from its JSON-object form,
    /// `{"type": "mul", "args": [3, 4], "id": "my-id", "max_attempts": 5}`,
    /// or the seed project's `{"task_id", "task_type", "task_args", "task_tries"}`.
    ///
    /// `args` and `id` may be missing or `null`; the seed's `task_tries` is ignored. Any other
    /// key is refused: a misspelt `max_attempts` or `delay` would otherwise run the task with
    /// a setting its author did not mean.
    public init(json: JSONValue) throws(TaskLineError) {
        guard let members = json.objectValue else {
            throw TaskLineError(.invalidJSON, "a JSON task must be an object, e.g. \(Self.jsonExample)")
        }
        if let unknown = members.keys.filter({ !Self.knownKeys.contains($0) }).sorted().first {
            throw TaskLineError.unknownKey(unknown, known: Self.documentedKeys)
        }
        guard let type = try Self.member(members, "type", legacy: "task_type") else {
            throw TaskLineError(.missingType, "missing \"type\": write it like \(Self.jsonExample)")
        }
        guard let typeName = type.stringValue, Self.isValidType(typeName) else {
            throw TaskLineError.invalidType(type)
        }
        switch try Self.member(members, "args", legacy: "task_args") {
        case nil, .null?:
            args = []
        case .array(let elements)?:
            args = elements
        case let other?:
            throw TaskLineError(
                .argsNotArray,
                "\"args\" must be a JSON array, e.g. \"args\": [1, 2], not \(TaskLineError.excerpt(other))")
        }
        for (number, argument) in zip(1..., args) { try Self.checkDepth(of: argument, number: number) }
        switch try Self.member(members, "id", legacy: "task_id") {
        case nil, .null?:
            id = nil
        case .string(let text)? where Self.isValidID(text):
            id = text
        case let other?:
            throw TaskLineError(
                .invalidID,
                "invalid id \(TaskLineError.excerpt(other)): use a string of 1 to \(Self.maximumIDLength) "
                    + "printable ASCII characters without spaces, or leave \"id\" out to get a generated one")
        }
        maxAttempts = try Self.readMaxAttempts(members["max_attempts"] ?? .null)
        switch (members["delay"], members["at"]) {
        case (nil, nil), (.null?, nil), (nil, .null?), (.null?, .null?): start = nil
        case (let delay?, nil), (let delay?, .null?): start = try TaskStart.readDelay(delay)
        case (nil, let at?), (.null?, let at?): start = try TaskStart.readAt(at)
        case (_?, _?):
            throw TaskLineError(.conflictingKeys, "give \"delay\" or \"at\", not both")
        }
        self.type = typeName
    }

    /// A task's `max_attempts` (`null` for none): an integer from 1 to 100, written as JSON
    /// writes one (`5`, not `+5` or `5.0`). The one rule of a JSON task's `max_attempts` and the
    /// web form's "max attempts", which hands its text over as JSON (see ``readMaxAttempts(text:)``).
    public static func readMaxAttempts(_ value: JSONValue) throws(TaskLineError) -> Int? {
        switch value {
        case .null:
            return nil
        case .int(let count) where allowedMaxAttempts.contains(Int(clamping: count)):
            return Int(count)
        default:
            throw TaskLineError(
                .invalidMaxAttempts,
                "\"max_attempts\" must be an integer from \(allowedMaxAttempts.lowerBound) to "
                    + "\(allowedMaxAttempts.upperBound), not \(TaskLineError.excerpt(value))")
        }
    }

    /// `max_attempts` typed as text (a form field): read as the JSON it would be in a task
    /// object, by ``readMaxAttempts(_:)``; other text (`null` too) is refused as a string.
    /// Empty text means none.
    public static func readMaxAttempts(text: String) throws(TaskLineError) -> Int? {
        guard !text.isEmpty else { return nil }
        guard let value = try? JSONValue(parsing: text), value != .null else {
            return try readMaxAttempts(.string(text))
        }
        return try readMaxAttempts(value)
    }

    /// The declaration in the JSON form of a task file, which ``init(json:)`` reads back as
    /// it is: what a producer writes for tasks to be submitted again under the same ids.
    public var json: JSONValue {
        var members: [String: JSONValue] = ["type": .string(type), "args": .array(args)]
        if let id { members["id"] = .string(id) }
        if let maxAttempts { members["max_attempts"] = .int(Int64(maxAttempts)) }
        switch start {
        case .after(let delay)?: members["delay"] = .string("\(delay.inMilliseconds)ms")
        case .at(let time)?: members["at"] = .int(time)
        case nil: break
        }
        return .object(members)
    }

    private static let jsonExample = #"{"type": "add", "args": [1, 2]}"#

    /// The keys of a JSON task, as the README documents them.
    static let documentedKeys = ["type", "args", "id", "max_attempts", "delay", "at"]
    /// Those and the seed format's.
    private static let knownKeys: Set<String> = Set(documentedKeys + ["task_type", "task_args", "task_id", "task_tries"])

    /// The member `name`, or else its seed-format spelling `legacy`; both
    /// present with different values is an error rather than a silent pick.
    private static func member(
        _ members: [String: JSONValue], _ name: String, legacy: String
    ) throws(TaskLineError) -> JSONValue? {
        let current = members[name]
        let old = members[legacy]
        if let current, let old, current != old {
            throw TaskLineError(
                .conflictingKeys, "\"\(name)\" and \"\(legacy)\" disagree: give only \"\(name)\"")
        }
        return current ?? old
    }
}

/// Why a task declaration line could not be read.
public struct TaskLineError: Error, CustomStringConvertible, Sendable, Hashable {
    /// The kind of problem, for callers that react to it.
    public enum Kind: Sendable, Hashable {
        /// The line is not valid UTF-8.
        case invalidUTF8
        /// A line starting with `{` is not a valid JSON object.
        case invalidJSON
        /// A JSON line has neither `type` nor `task_type`.
        case missingType
        /// The task type is not a string matching `[A-Za-z0-9_][A-Za-z0-9_.-]*` (≤ 64).
        case invalidType
        /// A JSON line's `args` is not an array.
        case argsNotArray
        /// An argument nests deeper than ``TaskMessage/maximumArgumentDepth``.
        case nestedTooDeep
        /// A JSON line's `id` is not a valid id string.
        case invalidID
        /// An argument is (or holds) an integer literal beyond 64 bits.
        case integerBeyond64Bits
        /// A JSON line's `max_attempts` is not an integer in 1...100.
        case invalidMaxAttempts
        /// A JSON line gives a key in both spellings (`type` and `task_type`) with different values.
        case conflictingKeys
        /// A JSON line has a key that is not a task's (a misspelling, say).
        case unknownKey
        /// A quoted argument has no closing quote.
        case unterminatedString
        /// A `[` or `{` argument has no closing bracket.
        case unclosedBracket
        /// An argument starting with `"`, `[` or `{` is not valid JSON.
        case invalidArgument
        /// `end` is followed by something.
        case endWithArguments
        /// A JSON line's `delay` or `at` is not a duration or a time (see ``TaskStart``).
        case invalidStart
        /// The line is longer than ``TaskFileParser/maximumLineBytes``.
        case lineTooLong
        /// A carriage return inside the line, not just before its line feed.
        case carriageReturn
    }

    /// The kind of problem.
    public var kind: Kind
    /// What is wrong and, where it helps, what to write instead.
    public var reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    /// The reason, ready to follow `file:line: `.
    public var description: String { reason }

    fileprivate static func invalidType(_ type: JSONValue) -> TaskLineError {
        TaskLineError(
            .invalidType,
            "invalid task type \(excerpt(type)): a type names its plugin file plugins/<type>.lua, so use "
                + "1 to \(TaskDeclaration.maximumTypeLength) letters, digits, '_', '.' or '-', "
                + "starting with a letter, digit or '_'")
    }

    fileprivate static func unknownKey(_ key: String, known: [String]) -> TaskLineError {
        let list = known.map { "\"\($0)\"" }
        let keys = list.dropLast().joined(separator: ", ") + " and " + list.last!
        let guess = known.first { Spelling.distance(key.lowercased(), $0, atMost: 2) != nil }
        return TaskLineError(
            .unknownKey,
            "unknown key \(excerpt(.string(key)))"
                + (guess.map { ": did you mean \"\($0)\"?" } ?? ".") + " A task takes \(keys)")
    }

    /// The value as JSON, shortened so a huge value does not flood the message.
    static func excerpt(_ value: JSONValue) -> String {
        let text = value.jsonString
        return text.count <= 60 ? text : text.prefix(57) + "..."
    }
}

/// One line of a task declaration file.
public enum TaskLine: Sendable, Equatable {
    /// A task to queue.
    case task(TaskDeclaration)
    /// `end`: the end marker for every worker.
    case end
    /// An empty line or a `#` comment.
    case blank

    /// Reads one line (without its line break).
    ///
    /// A carriage return inside the line (not only before its end) is an error.
    /// After trimming whitespace, the line is blank or a `#` comment, exactly
    /// `end`, a JSON object (see ``TaskDeclaration/init(json:)``), or a task
    /// type followed by whitespace-separated arguments. Each argument is read
    /// as JSON when it is valid JSON (`1`, `2.5`, `true`, `null`, `"a b"`,
    /// `[1, 2]`, `{"a": 1}`; quoted strings and brackets may contain spaces),
    /// else taken as a bare string (`hello`, `01`). An argument that starts
    /// with `"`, `[` or `{` must be valid JSON, so a typo there is reported
    /// rather than silently passed on as text.
    public static func parse(line: some StringProtocol) throws(TaskLineError) -> TaskLine {
        try UTF8Input.withContiguous(line.utf8) { bytes throws(TaskLineError) in
            try parse(validUTF8: bytes)
        }
    }

    /// Reads one line from raw bytes (without its line break); bytes that
    /// are not valid UTF-8 are an error. See ``parse(line:)``.
    public static func parse(utf8 line: some Collection<UInt8>) throws(TaskLineError) -> TaskLine {
        try UTF8Input.withContiguous(line) { bytes throws(TaskLineError) in
            guard UTF8Input.isValid(bytes) else {
                throw TaskLineError(.invalidUTF8, "the line is not valid UTF-8 text; save the file as UTF-8")
            }
            return try parse(validUTF8: bytes)
        }
    }

    private static func parse(validUTF8 line: UnsafeBufferPointer<UInt8>) throws(TaskLineError) -> TaskLine {
        var start = 0
        var end = line.count
        while start < end, isSpace(line[start]) { start += 1 }
        while end > start, isSpace(line[end - 1]) { end -= 1 }
        let text = UnsafeBufferPointer(rebasing: line[start..<end])
        // A carriage return ends a line only with its line feed (CRLF). Inside a line it is an
        // old Mac line break, which read as a space made one task (or one comment) of many lines.
        if text.contains(ASCIIByte.carriageReturn) {
            throw TaskLineError(
                .carriageReturn,
                "the line holds a carriage return (\\r) before its end: lines end with \\n or \\r\\n, so "
                    + "convert a file with old Mac line breaks, e.g. tr '\\r' '\\n' < old.txt > tasks.txt")
        }
        guard let first = text.first, first != ASCIIByte.hash else { return .blank }
        if first == ASCIIByte.openBrace {
            let value: JSONValue
            do {
                value = try JSONValue(parsing: text)
            } catch {
                throw TaskLineError(
                    .invalidJSON,
                    "invalid JSON task line: \(error); write it like {\"type\": \"add\", \"args\": [1, 2]}")
            }
            let declaration = try TaskDeclaration(json: value)
            try TaskDeclaration.checkIntegers(in: text, parsed: value)
            return .task(declaration)
        }
        return try parseWords(text)
    }

    /// The `type arg arg ...` form (and `end`).
    private static func parseWords(_ text: UnsafeBufferPointer<UInt8>) throws(TaskLineError) -> TaskLine {
        let tokens = try tokenRanges(in: text)
        let type = string(text, tokens[0])
        if type == "end" {
            guard tokens.count == 1 else {
                throw TaskLineError(.endWithArguments, "'end' takes no arguments: write it alone on its line")
            }
            return .end
        }
        guard TaskDeclaration.isValidType(type) else { throw TaskLineError.invalidType(.string(type)) }
        var args: [JSONValue] = []
        args.reserveCapacity(tokens.count - 1)
        for (number, range) in zip(1..., tokens.dropFirst()) {
            let value = try argument(text, range, number: number)
            try TaskDeclaration.checkDepth(of: value, number: number)
            args.append(value)
        }
        return .task(TaskDeclaration(type: type, args: args))
    }

    private static func argument(
        _ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, number: Int
    ) throws(TaskLineError) -> JSONValue {
        let token = UnsafeBufferPointer(rebasing: text[range])
        let value: JSONValue
        do {
            value = try JSONValue(parsing: token)
        } catch {
            let word = string(text, range)
            guard startsStructured(token[0]) else { return .string(word) }
            throw TaskLineError(
                .invalidArgument,
                "argument \(number) \(word) is not valid JSON (\(error)); fix it, or quote it to pass it as text")
        }
        try TaskDeclaration.checkIntegers(in: token, parsed: value, argument: number)
        return value
    }

    /// Splits the line at whitespace, except inside a quoted string or
    /// brackets of a token that starts with `"`, `[` or `{`, so that
    /// `"hello world"` and `[1, 2]` are one token each.
    private static func tokenRanges(in text: UnsafeBufferPointer<UInt8>) throws(TaskLineError) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var index = 0
        while true {
            while index < text.count, isSpace(text[index]) { index += 1 }
            guard index < text.count else { return ranges }
            let start = index
            if startsStructured(text[start]) {
                let what = ranges.isEmpty ? "the task type" : "argument \(ranges.count)"
                try skipStructuredToken(text, &index, describedAs: what)
            } else {
                while index < text.count, !isSpace(text[index]) { index += 1 }
            }
            ranges.append(start..<index)
        }
    }

    private static func skipStructuredToken(
        _ text: UnsafeBufferPointer<UInt8>, _ index: inout Int, describedAs what: String
    ) throws(TaskLineError) {
        var closers: [UInt8] = []
        var inString = false
        scan: while index < text.count {
            let byte = text[index]
            if inString {
                switch byte {
                case ASCIIByte.backslash: index += 1  // the escaped byte cannot end the string
                case ASCIIByte.quote: inString = false
                default: break
                }
            } else {
                switch byte {
                case ASCIIByte.quote: inString = true
                case ASCIIByte.openBracket: closers.append(ASCIIByte.closeBracket)
                case ASCIIByte.openBrace: closers.append(ASCIIByte.closeBrace)
                // A mismatched closer is left for the JSON parser to report.
                case ASCIIByte.closeBracket, ASCIIByte.closeBrace: _ = closers.popLast()
                case _ where closers.isEmpty && isSpace(byte): break scan
                default: break
                }
            }
            index += 1
        }
        index = min(index, text.count)
        if inString {
            throw TaskLineError(.unterminatedString, "unterminated string in \(what): add the closing '\"'")
        }
        if !closers.isEmpty {
            let missing = String(decoding: closers.reversed(), as: UTF8.self)
            throw TaskLineError(.unclosedBracket, "unclosed bracket in \(what): add the missing '\(missing)'")
        }
    }

    private static func startsStructured(_ byte: UInt8) -> Bool {
        byte == ASCIIByte.quote || byte == ASCIIByte.openBracket || byte == ASCIIByte.openBrace
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == ASCIIByte.space || byte == ASCIIByte.tab || byte == ASCIIByte.carriageReturn
            || byte == ASCIIByte.newline
    }

    private static func string(_ text: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: text[range]), as: UTF8.self)
    }
}

/// Splits a task file into lines and reads each one, numbering them from 1
/// so that errors can be reported as `file:line: reason`.
///
/// It is incremental: ``feed(_:)`` takes bytes as they arrive (a whole
/// file, or whatever `read` returned from a pipe such as `tail -f`) and
/// returns the lines completed so far; ``finish()`` returns a last line that
/// has no line break. Lines end with `\n` or `\r\n`; a UTF-8 byte order mark
/// at the start of the file is skipped. A bad line is reported in its
/// `result` and does not stop the lines after it.
public struct TaskFileParser: Sendable {
    /// One numbered line and what it holds.
    public struct Line: Sendable, Equatable {
        /// The 1-based line number in the file.
        public var number: Int
        /// The line, or why it could not be read.
        public var result: Result<TaskLine, TaskLineError>

        public init(number: Int, result: Result<TaskLine, TaskLineError>) {
            self.number = number
            self.result = result
        }
    }

    /// Bytes of the line in progress; never contains a line break between calls, nor more
    /// than ``maximumLineBytes``.
    private var pending: [UInt8] = []
    /// Bytes of the line in progress dropped because it is too long: a file without line
    /// breaks must not grow the buffer without bound.
    private var dropped = 0
    private var linesRead = 0
    /// The longest line read: a longer one cannot hold a task the producer could send (see
    /// ``MessageSizeLimit``) and is refused with its number.
    public let maximumLineBytes: Int

    public init(maximumLineBytes: Int = MessageSizeLimit.librdkafkaDefault) {
        self.maximumLineBytes = maximumLineBytes
    }

    /// Reads the lines completed by `chunk`.
    public mutating func feed(_ chunk: some Collection<UInt8>) -> [Line] {
        let searchStart = pending.count
        pending.append(contentsOf: chunk)
        var lines: [Line] = []
        var lineStart = 0
        while let newline = pending[max(lineStart, searchStart)...].firstIndex(of: ASCIIByte.newline) {
            lines.append(read(pending[lineStart..<newline]))
            lineStart = newline + 1
        }
        pending.removeFirst(lineStart)
        if pending.count > maximumLineBytes {
            dropped += pending.count
            pending.removeAll(keepingCapacity: true)
        }
        return lines
    }

    /// Reads the last line if the input did not end with a line break; call
    /// it once at the end of the input.
    public mutating func finish() -> Line? {
        guard !pending.isEmpty || dropped > 0 else { return nil }
        defer { pending.removeAll() }
        return read(pending[...])
    }

    /// Reads every line of a whole file.
    public static func parse(_ contents: some Collection<UInt8>) -> [Line] {
        var parser = TaskFileParser()
        var lines = parser.feed(contents)
        if let last = parser.finish() { lines.append(last) }
        return lines
    }

    private static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    private mutating func read(_ line: ArraySlice<UInt8>) -> Line {
        linesRead += 1
        let length = dropped + line.count
        dropped = 0
        guard length <= maximumLineBytes else {
            let reason = "the line is \(length) bytes long; at most \(maximumLineBytes) (the largest task message the "
                + "producer sends): make its arguments smaller"
            return Line(number: linesRead, result: .failure(TaskLineError(.lineTooLong, reason)))
        }
        let text = linesRead == 1 && line.starts(with: Self.byteOrderMark) ? line.dropFirst(3) : line
        // A trailing "\r" of a CRLF line break is whitespace to `parse`.
        return Line(number: linesRead, result: Result { () throws(TaskLineError) in try TaskLine.parse(utf8: text) })
    }
}
