/// One Redis command, its arguments laid end to end in a single buffer so a
/// pipeline of thousands of commands costs a handful of allocations.
struct RedisCommand: Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var lengths: [Int] = []

    init(_ arguments: String...) {
        for argument in arguments { append(argument) }
    }

    init(_ arguments: [String]) {
        for argument in arguments { append(argument) }
    }

    mutating func append(_ argument: String) {
        var argument = argument
        argument.withUTF8 { bytes.append(contentsOf: $0) }
        lengths.append(argument.utf8.count)
    }

    mutating func append(_ argument: some BinaryInteger) {
        append(String(argument))
    }

    mutating func append(bytes argument: [UInt8]) {
        bytes.append(contentsOf: argument)
        lengths.append(argument.count)
    }

    mutating func appendRaw(_ argumentBytes: [UInt8], lengths argumentLengths: [Int]) {
        bytes.append(contentsOf: argumentBytes)
        lengths.append(contentsOf: argumentLengths)
    }

    var argumentCount: Int { lengths.count }

    /// The bytes of argument `index` (0 is the command's name).
    func argument(_ index: Int) -> ArraySlice<UInt8> {
        let start = lengths[..<index].reduce(0, +)
        return bytes[start..<start + lengths[index]]
    }

    /// The key a Redis Cluster routes this command by: the first key of `EVAL`/`EVALSHA`
    /// (after the script and the key count), the first argument of every other command YADTQ
    /// sends, and `nil` for commands without a key (`PING`, `SCRIPT`, `WAIT`, `INFO`, ...).
    var routingKey: ArraySlice<UInt8>? {
        guard argumentCount >= 2 else { return nil }
        let name = String(decoding: argument(0), as: UTF8.self).uppercased()
        switch name {
        case "EVAL", "EVALSHA":
            guard argumentCount >= 4, let keys = Int(String(decoding: argument(2), as: UTF8.self)), keys > 0 else {
                return nil
            }
            return argument(3)
        case "PING", "SCRIPT", "WAIT", "INFO", "CLUSTER", "ASKING", "AUTH", "SELECT", "CONFIG", "DBSIZE":
            return nil
        default:
            return argument(1)
        }
    }
}

/// A reply as Redis sent it (RESP2).
enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case integer(Int64)
    case array([RedisReply])
    case null
    case status(String)
    case error(String)

    var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        case .integer(let value): String(value)
        default: nil
        }
    }

    var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .string: text.flatMap { Int64($0) }
        default: nil
        }
    }

    /// A count Redis answered (a counter read back, a count a script returned): none is 0.
    var counter: Int { Int(integer ?? 0) }

    var elements: [RedisReply] {
        if case .array(let elements) = self { return elements }
        return []
    }

    var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}
