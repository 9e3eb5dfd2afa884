/// A task as it travels on the Kafka topic:
/// `{"id","type","args","max_attempts","queued_at"}`.
public struct TaskMessage: Sendable, Hashable {
    public static let defaultMaxAttempts = 3

    /// How deep a task's arguments may nest: the message object and its `args` array take
    /// two of the ``JSONValue/maximumNestingDepth`` levels a worker reads, so a producer
    /// that keeps to this never publishes a message the worker cannot parse.
    public static let maximumArgumentDepth = JSONValue.maximumNestingDepth - 2

    public var id: String
    public var type: String
    public var args: [JSONValue]
    public var maxAttempts: Int
    /// Milliseconds since the epoch at which the producer queued it.
    public var queuedAt: Int64

    public init(id: String, type: String, args: [JSONValue], maxAttempts: Int, queuedAt: Int64) {
        self.id = id
        self.type = type
        self.args = args
        self.maxAttempts = maxAttempts
        self.queuedAt = queuedAt
    }

    /// The arguments as the JSON array text stored in Redis.
    public var renderedArgs: [UInt8] { JSONValue.array(args).jsonBytes }

    public var json: JSONValue {
        .object([
            "id": .string(id), "type": .string(type), "args": .array(args),
            "max_attempts": .int(Int64(maxAttempts)), "queued_at": .int(queuedAt),
        ])
    }

    /// The Kafka message value.
    public func encoded() -> [UInt8] { encoded(renderedArgs: renderedArgs) }

    /// The Kafka message value (``json``'s text, keys in the same sorted order) around
    /// arguments already rendered for Redis, so a publish serializes them once.
    public func encoded(renderedArgs: [UInt8]) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(renderedArgs.count + id.utf8.count + type.utf8.count + 64)
        buffer.append(contentsOf: #"{"args":"#.utf8)
        buffer.append(contentsOf: renderedArgs)
        buffer.append(contentsOf: #","id":"#.utf8)
        JSONValue.string(id).write(to: &buffer)
        buffer.append(contentsOf: #","max_attempts":"#.utf8)
        JSONValue.int(Int64(maxAttempts)).write(to: &buffer)
        buffer.append(contentsOf: #","queued_at":"#.utf8)
        JSONValue.int(queuedAt).write(to: &buffer)
        buffer.append(contentsOf: #","type":"#.utf8)
        JSONValue.string(type).write(to: &buffer)
        buffer.append(UInt8(ascii: "}"))
        return buffer
    }
}

/// What a message on the task topic can be.
public enum TopicMessage: Sendable, Equatable {
    case task(TaskMessage)
    /// The end marker `yadtq-run` publishes to every partition for an `end` line.
    case end(marker: String)

    /// The value of an end marker message.
    public static func endMarker(_ marker: String) -> [UInt8] {
        Array(JSONValue.object(["end": .string(marker)]).jsonString.utf8)
    }

    /// Reads a message value; the error says why a poison message cannot be a task.
    public static func decode(_ bytes: some Collection<UInt8>) throws(TopicMessageError) -> TopicMessage {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes)
        } catch {
            throw TopicMessageError(id: salvageID(bytes), reason: "message is not JSON: \(error)")
        }
        guard case .object(let fields) = value else {
            throw TopicMessageError(id: nil, reason: "message is JSON but not an object")
        }
        if case .string(let marker)? = fields["end"] { return .end(marker: marker) }
        guard case .string(let id)? = fields["id"], !id.isEmpty else {
            throw TopicMessageError(id: nil, reason: "message has no string \"id\"")
        }
        guard TaskDeclaration.isValidID(id) else {
            throw TopicMessageError(
                id: nil,
                reason: "invalid task id \(excerpt(id)) (\(id.utf8.count) bytes): ids are 1 to "
                    + "\(TaskDeclaration.maximumIDLength) printable ASCII characters without spaces")
        }
        guard case .string(let type)? = fields["type"] else {
            throw TopicMessageError(id: id, reason: "message has no string \"type\"")
        }
        guard TaskDeclaration.isValidType(type) else {
            throw TopicMessageError(
                id: id,
                reason: "invalid task type \(excerpt(type)): types are 1 to \(TaskDeclaration.maximumTypeLength) "
                    + "letters, digits, '_', '.' or '-'")
        }
        let args: [JSONValue]
        switch fields["args"] {
        case nil, .null?: args = []
        case .array(let values)?: args = values
        default: throw TopicMessageError(id: id, reason: "\"args\" is not an array")
        }
        var maxAttempts = defaultMaxAttempts
        if let value = fields["max_attempts"] {
            guard case .int(let number) = value, TaskDeclaration.allowedMaxAttempts.contains(Int(clamping: number)) else {
                let range = TaskDeclaration.allowedMaxAttempts
                throw TopicMessageError(
                    id: id, reason: "\"max_attempts\" is not an integer from \(range.lowerBound) to \(range.upperBound)")
            }
            maxAttempts = Int(number)
        }
        var queuedAt: Int64 = 0
        if case .int(let number)? = fields["queued_at"] { queuedAt = number }
        return .task(TaskMessage(id: id, type: type, args: args, maxAttempts: maxAttempts, queuedAt: queuedAt))
    }

    private static let defaultMaxAttempts = TaskMessage.defaultMaxAttempts

    /// A field's value for an error message: quoted JSON, control characters escaped, long ones cut.
    private static func excerpt(_ text: String) -> String {
        let quoted = JSONValue.string(ErrorText.prefix(text, bytes: 60)).jsonString
        return text.utf8.count > 60 ? quoted + "…" : quoted
    }

    /// The `"id"` member of a message that does not parse as a whole (too deep, or broken
    /// after the id), found by scanning its top-level members without building any value;
    /// `nil` when there is none or it is not a valid id. A refused task is then failed
    /// under its own id instead of staying QUEUED for ever.
    static func salvageID(_ bytes: some Collection<UInt8>) -> String? {
        let text = Array(bytes)
        var index = 0
        func skipSpace() {
            while index < text.count, [0x20, 0x09, 0x0A, 0x0D].contains(text[index]) { index += 1 }
        }
        /// The end (exclusive) of the string token starting at `index`, or nil if unterminated.
        func stringEnd() -> Int? {
            var at = index + 1
            while at < text.count, text[at] != ASCIIByte.quote { at += text[at] == ASCIIByte.backslash ? 2 : 1 }
            return at < text.count ? at + 1 : nil
        }
        skipSpace()
        guard index < text.count, text[index] == ASCIIByte.openBrace else { return nil }
        index += 1
        var depth = 1
        var expectingKey = true
        while index < text.count, depth > 0 {
            let byte = text[index]
            if byte == ASCIIByte.quote {
                guard let end = stringEnd() else { return nil }
                let token = text[index..<end]
                index = end
                guard depth == 1, expectingKey else { continue }
                expectingKey = false
                skipSpace()
                guard index < text.count, text[index] == ASCIIByte.colon else { return nil }
                index += 1
                skipSpace()
                guard token.elementsEqual(#""id""#.utf8), index < text.count, text[index] == ASCIIByte.quote,
                    let valueEnd = stringEnd()
                else { continue }
                let id = (try? JSONValue(parsing: text[index..<valueEnd]))?.stringValue
                return id.flatMap { TaskDeclaration.isValidID($0) ? $0 : nil }
            }
            switch byte {
            case ASCIIByte.openBrace, ASCIIByte.openBracket: depth += 1
            case ASCIIByte.closeBrace, ASCIIByte.closeBracket: depth -= 1
            case ASCIIByte.comma where depth == 1: expectingKey = true
            default: break
            }
            index += 1
        }
        return nil
    }
}

/// Why a message on the task topic is not a task (a "poison" message).
public struct TopicMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The task id, when the message got far enough to name one.
    public var id: String?
    public var reason: String
    public var description: String { reason }

    public init(id: String?, reason: String) {
        self.id = id
        self.reason = reason
    }
}
