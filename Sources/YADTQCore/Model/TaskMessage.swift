/// A task as it travels on the Kafka topic:
/// `{"id","type","args","max_attempts","queued_at"}`.
public struct TaskMessage: Sendable, Hashable {
    public static let defaultMaxAttempts = 3

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
            throw TopicMessageError(id: nil, reason: "message is not JSON: \(error)")
        }
        guard case .object(let fields) = value else {
            throw TopicMessageError(id: nil, reason: "message is JSON but not an object")
        }
        if case .string(let marker)? = fields["end"] { return .end(marker: marker) }
        guard case .string(let id)? = fields["id"], !id.isEmpty else {
            throw TopicMessageError(id: nil, reason: "message has no string \"id\"")
        }
        guard case .string(let type)? = fields["type"] else {
            throw TopicMessageError(id: id, reason: "message has no string \"type\"")
        }
        let args: [JSONValue]
        switch fields["args"] {
        case nil, .null?: args = []
        case .array(let values)?: args = values
        default: throw TopicMessageError(id: id, reason: "\"args\" is not an array")
        }
        var maxAttempts = defaultMaxAttempts
        if let value = fields["max_attempts"] {
            guard case .int(let number) = value, (1...100).contains(number) else {
                throw TopicMessageError(id: id, reason: "\"max_attempts\" is not an integer from 1 to 100")
            }
            maxAttempts = Int(number)
        }
        var queuedAt: Int64 = 0
        if case .int(let number)? = fields["queued_at"] { queuedAt = number }
        return .task(TaskMessage(id: id, type: type, args: args, maxAttempts: maxAttempts, queuedAt: queuedAt))
    }

    private static let defaultMaxAttempts = TaskMessage.defaultMaxAttempts
}

/// Why a message on the task topic is not a task (a "poison" message).
public struct TopicMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The task id, when the message got far enough to name one.
    public var id: String?
    public var reason: String
    public var description: String { reason }
}
