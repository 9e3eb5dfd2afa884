// Parsing and serialization of `JSONValue`.
//
// Every task message goes through here twice (producer and worker), so both
// directions work on raw UTF-8 bytes and avoid Foundation: no `Character`
// iteration, no intermediate `Any` trees, one allocation per string, array and
// object.

/// Why JSON text could not be parsed, and where.
public struct JSONParseError: Error, CustomStringConvertible, Sendable, Hashable {
    /// Offset of the offending byte from the start of the input (0-based).
    public var offset: Int
    /// What is wrong, e.g. `unexpected character 'x'` or `unterminated string`.
    public var reason: String

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }

    /// What kind of problem it is.
    public var kind: Kind = .syntax
    /// For ``Kind/integerBeyond64Bits``: where the integer is, outermost first
    /// (`[.key("args"), .index(1)]` for the second argument of a task object).
    public var path: [PathComponent] = []

    public enum Kind: Sendable, Hashable {
        /// Not JSON by the rules of the parser (including a repeated key).
        case syntax
        /// An integer literal beyond 64 bits, when the parser was asked to
        /// refuse one (``JSONValue/WideIntegers/refuse``).
        case integerBeyond64Bits
    }

    /// A step from a container to one of its values.
    public enum PathComponent: Sendable, Hashable {
        case index(Int)
        case key(String)
    }

    /// `reason at byte offset`, e.g. `unexpected character 'x' at byte 12`.
    public var description: String { "\(reason) at byte \(offset)" }

    /// The error as seen from the container that holds the value at `component`.
    fileprivate func inside(_ component: PathComponent) -> JSONParseError {
        guard kind == .integerBeyond64Bits else { return self }
        var error = self
        error.path.insert(component, at: 0)
        return error
    }
}

// MARK: - Parsing

extension JSONValue {
    /// Containers nested deeper than this are rejected, so hostile input
    /// gets an error instead of overflowing the stack.
    public static let maximumNestingDepth = 512

    /// Parses one JSON document (RFC 8259) from UTF-8 bytes.
    ///
    /// The parser is strict: one value, optionally surrounded by whitespace,
    /// and nothing else; no leading zeros, trailing commas, comments, `NaN`,
    /// or invalid UTF-8. Choices where the RFC leaves room:
    /// - An integer literal that fits `Int64` becomes `.int`; one with a
    ///   fraction or exponent becomes `.double`. One beyond `Int64` becomes a
    ///   (rounded) `.double` too, unless `wideIntegers` is `.refuse`: task
    ///   input refuses it (see ``TaskDeclaration/checkIntegers(in:parsed:argument:)``)
    ///   rather than lose digits of an order number. A number too large for a
    ///   `Double` (`1e400`) is an error.
    /// - An escaped lone surrogate (`"\ud800"`) decodes to U+FFFD rather than
    ///   failing the whole document: JavaScript can produce such strings and a
    ///   task should not be lost for one bad character.
    /// - A key that appears twice in one object is an error
    ///   (`key "type" appears twice`), not a silent pick of one of its values.
    public init(parsing bytes: some Collection<UInt8>, wideIntegers: WideIntegers = .double) throws(JSONParseError) {
        self = try UTF8Input.withContiguous(bytes) { buffer throws(JSONParseError) in
            var parser = JSONParser(buffer, refusesWideIntegers: wideIntegers == .refuse)
            return try parser.parseDocument()
        }
    }

    /// What the parser makes of an integer literal beyond 64 bits.
    public enum WideIntegers: Sendable, Hashable {
        /// The nearest `.double`.
        case double
        /// An error of kind ``JSONParseError/Kind/integerBeyond64Bits`` with
        /// the integer's path.
        case refuse
    }

    /// Parses one JSON document from text, by the rules of the byte-based
    /// ``init(parsing:)``.
    public init(parsing text: String, wideIntegers: WideIntegers = .double) throws(JSONParseError) {
        try self.init(parsing: text.utf8, wideIntegers: wideIntegers)
    }
}

/// A recursive-descent parser over a contiguous byte buffer.
private struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0
    private let refusesWideIntegers: Bool

    init(_ bytes: UnsafeBufferPointer<UInt8>, refusesWideIntegers: Bool) {
        self.bytes = bytes
        self.refusesWideIntegers = refusesWideIntegers
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        let value = try parseValue()
        skipWhitespace()
        guard index == bytes.count else {
            throw failure("unexpected \(describe(bytes[index])) after the JSON value")
        }
        return value
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard index < bytes.count else { throw failure("unexpected end of input, expected a JSON value") }
        switch bytes[index] {
        case ASCIIByte.openBrace: return try parseObject()
        case ASCIIByte.openBracket: return try parseArray()
        case ASCIIByte.quote: return .string(try parseString())
        case ASCIIByte.minus, ASCIIByte.zero...ASCIIByte.nine: return try parseNumber()
        case UInt8(ascii: "t"): try expectKeyword("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectKeyword("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectKeyword("null"); return .null
        case let byte: throw failure("unexpected \(describe(byte)), expected a JSON value")
        }
    }

    // MARK: Containers

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        guard depth <= JSONValue.maximumNestingDepth else {
            throw failure("arrays and objects nested deeper than \(JSONValue.maximumNestingDepth) levels")
        }
        index += 1
        skipWhitespace()
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        defer { depth -= 1 }
        var elements: [JSONValue] = []
        if consume(ASCIIByte.closeBracket) { return .array(elements) }
        while true {
            do {
                elements.append(try parseValue())
            } catch {
                throw error.inside(.index(elements.count))
            }
            skipWhitespace()
            if consume(ASCIIByte.comma) { continue }
            if consume(ASCIIByte.closeBracket) { return .array(elements) }
            throw unexpected(expecting: "',' or ']'")
        }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        defer { depth -= 1 }
        // Task messages have about five members: sizing the table up front
        // saves the rehashing of several small resizes.
        var members = [String: JSONValue](minimumCapacity: 8)
        if consume(ASCIIByte.closeBrace) { return .object(members) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == ASCIIByte.quote else {
                throw unexpected(expecting: "a string key")
            }
            let keyStart = index
            let key = try parseString()
            skipWhitespace()
            guard consume(ASCIIByte.colon) else { throw unexpected(expecting: "':'") }
            // A repeated key is refused rather than one of its values silently
            // kept: `{"type": "add", "type": "mul"}` has no meaning its author
            // can be sure of, and nothing YADTQ reads needs one.
            let value: JSONValue
            do {
                value = try parseValue()
            } catch {
                throw error.inside(.key(key))
            }
            if members.updateValue(value, forKey: key) != nil {
                throw JSONParseError(offset: keyStart, reason: "key \(JSONParser.quoted(key)) appears twice")
            }
            skipWhitespace()
            if consume(ASCIIByte.comma) { continue }
            if consume(ASCIIByte.closeBrace) { return .object(members) }
            throw unexpected(expecting: "',' or '}'")
        }
    }

    // MARK: Strings

    /// Parses the string whose opening quote is at `index`. Strings without
    /// escapes (nearly all of them) become a `String` straight from the input
    /// bytes; the first backslash switches to `parseEscapedString`.
    private mutating func parseString() throws(JSONParseError) -> String {
        let opening = index
        index += 1
        let start = index
        while index < bytes.count {
            // Plain printable ASCII is by far the most common: skip it inline.
            let byte = bytes[index]
            if byte >= 0x20, byte < 0x80, byte != ASCIIByte.quote, byte != ASCIIByte.backslash {
                index += 1
                continue
            }
            switch byte {
            case ASCIIByte.quote:
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            case ASCIIByte.backslash:
                return try parseEscapedString(contentStart: start, opening: opening)
            case let byte:
                try skipStringCharacter(byte)
            }
        }
        throw JSONParseError(offset: opening, reason: "unterminated string")
    }

    private mutating func parseEscapedString(contentStart: Int, opening: Int) throws(JSONParseError) -> String {
        var utf8: [UInt8] = []
        utf8.reserveCapacity(index - contentStart + 16)
        utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[contentStart..<index]))
        while index < bytes.count {
            switch bytes[index] {
            case ASCIIByte.quote:
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            case ASCIIByte.backslash:
                try appendEscape(to: &utf8)
            case let byte:
                let start = index
                try skipStringCharacter(byte)
                utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
            }
        }
        throw JSONParseError(offset: opening, reason: "unterminated string")
    }

    /// Steps over one unescaped character of a string, checking that it is
    /// allowed there (no raw control characters) and is well-formed UTF-8.
    private mutating func skipStringCharacter(_ byte: UInt8) throws(JSONParseError) {
        if byte < 0x20 {
            throw failure("unescaped control character \(hex(byte)) in string (write it as \\u00\(hexDigits(byte)))")
        }
        if byte < 0x80 {
            index += 1
        } else if let length = UTF8Input.sequenceLength(in: bytes, at: index) {
            index += length
        } else {
            throw failure("invalid UTF-8 byte \(hex(byte)) in string")
        }
    }

    /// Decodes the escape sequence at `index` (a backslash) into `utf8`.
    private mutating func appendEscape(to utf8: inout [UInt8]) throws(JSONParseError) {
        let escapeStart = index
        index += 1
        guard index < bytes.count else { throw JSONParseError(offset: escapeStart, reason: "unterminated escape sequence") }
        let simple: UInt8
        switch bytes[index] {
        case ASCIIByte.quote, ASCIIByte.backslash, ASCIIByte.slash: simple = bytes[index]
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = ASCIIByte.newline
        case UInt8(ascii: "r"): simple = ASCIIByte.carriageReturn
        case UInt8(ascii: "t"): simple = ASCIIByte.tab
        case UInt8(ascii: "u"):
            index += 1
            appendScalar(try parseUnicodeEscape(), to: &utf8)
            return
        case let byte:
            throw JSONParseError(offset: escapeStart, reason: "invalid escape sequence '\\\(printable(byte))'")
        }
        utf8.append(simple)
        index += 1
    }

    /// Decodes the hex digits after `\u` (and a following `\uXXXX` low
    /// surrogate, if the first was a high one). Lone surrogates become U+FFFD.
    private mutating func parseUnicodeEscape() throws(JSONParseError) -> Unicode.Scalar {
        let unit = try parseHex4()
        switch unit {
        case 0xD800...0xDBFF:
            // Only consume the next escape if it really is the low half;
            // otherwise it is decoded on its own.
            let next = index
            if next + 1 < bytes.count, bytes[next] == ASCIIByte.backslash, bytes[next + 1] == UInt8(ascii: "u") {
                index += 2
                let low = try parseHex4()
                if (0xDC00...0xDFFF).contains(low) {
                    let value = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    return Unicode.Scalar(value) ?? "\u{FFFD}"
                }
                index = next
            }
            return "\u{FFFD}"
        case 0xDC00...0xDFFF:
            return "\u{FFFD}"
        default:
            return Unicode.Scalar(unit) ?? "\u{FFFD}"
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard index < bytes.count else { throw failure("unterminated \\u escape, expected 4 hex digits") }
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case ASCIIByte.zero...ASCIIByte.nine: digit = byte - ASCIIByte.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid \(describe(byte)) in \\u escape, expected 4 hex digits")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    private func appendScalar(_ scalar: Unicode.Scalar, to utf8: inout [UInt8]) {
        UTF8.encode(scalar) { utf8.append($0) }
    }

    // MARK: Numbers

    /// Parses `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        let negative = consume(ASCIIByte.minus)
        let integerStart = index
        guard index < bytes.count, isDigit(bytes[index]) else {
            throw unexpected(expecting: "a digit after '-'")
        }
        if bytes[index] == ASCIIByte.zero, index + 1 < bytes.count, isDigit(bytes[index + 1]) {
            throw JSONParseError(offset: index, reason: "leading zeros are not allowed in numbers")
        }
        skipDigits()
        let integerEnd = index
        var isInteger = true
        if consume(ASCIIByte.dot) {
            try expectDigits(after: "the decimal point")
            isInteger = false
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == ASCIIByte.plus || bytes[index] == ASCIIByte.minus { index += 1 }
            try expectDigits(after: "the exponent")
            isInteger = false
        }
        if isInteger {
            if let value = int64(digits: integerStart..<integerEnd, negative: negative) { return .int(value) }
            if refusesWideIntegers {
                var error = JSONParseError(offset: start, reason: "integer beyond 64 bits")
                error.kind = .integerBeyond64Bits
                throw error
            }
        }
        // The grammar is already checked, so the standard library's correctly
        // rounded conversion only ever sees a valid decimal literal.
        let literal = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(literal), value.isFinite else {
            throw JSONParseError(offset: start, reason: "number \(literal) is out of range")
        }
        return .double(value)
    }

    /// The integer spelled by `digits`, or `nil` if it does not fit `Int64`.
    /// Accumulates negatively so that `Int64.min` fits.
    private func int64(digits: Range<Int>, negative: Bool) -> Int64? {
        var value: Int64 = 0
        for position in digits {
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.subtractingReportingOverflow(Int64(bytes[position] - ASCIIByte.zero))
            if overflow1 || overflow2 { return nil }
            value = next
        }
        if negative { return value }
        return value == .min ? nil : -value
    }

    private mutating func expectDigits(after what: String) throws(JSONParseError) {
        guard index < bytes.count, isDigit(bytes[index]) else {
            throw unexpected(expecting: "a digit after \(what)")
        }
        skipDigits()
    }

    private mutating func skipDigits() {
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte &- ASCIIByte.zero < 10
    }

    // MARK: Tokens

    private mutating func expectKeyword(_ keyword: StaticString) throws(JSONParseError) {
        let start = index
        let length = keyword.utf8CodeUnitCount
        let matches = start + length <= bytes.count
            && keyword.withUTF8Buffer { expected in
                expected.elementsEqual(UnsafeBufferPointer(rebasing: bytes[start..<start + length]))
            }
        guard matches else { throw failure("invalid literal, expected '\(keyword)'") }
        index += length
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case ASCIIByte.space, ASCIIByte.newline, ASCIIByte.carriageReturn, ASCIIByte.tab: index += 1
            default: return
            }
        }
    }

    // MARK: Errors

    private func failure(_ reason: String) -> JSONParseError {
        JSONParseError(offset: index, reason: reason)
    }

    private func unexpected(expecting expected: String) -> JSONParseError {
        guard index < bytes.count else { return failure("unexpected end of input, expected \(expected)") }
        return failure("unexpected \(describe(bytes[index])), expected \(expected)")
    }

    private func describe(_ byte: UInt8) -> String {
        switch byte {
        case 0x21...0x7E: "character '\(printable(byte))'"
        case 0x80...: "byte \(hex(byte))"
        default: "control character \(hex(byte))"
        }
    }

    /// `key` as a JSON string, shortened so a huge key does not flood the message.
    static func quoted(_ key: String) -> String {
        let text = JSONValue.string(key).jsonString
        return text.count <= 60 ? text : text.prefix(56) + "\"..."
    }

    private func printable(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? String(UnicodeScalar(byte)) : hex(byte)
    }
}

private func hex(_ byte: UInt8) -> String { "0x" + hexDigits(byte) }

private func hexDigits(_ byte: UInt8) -> String {
    String(decoding: [ASCIIByte.hexDigits[Int(byte >> 4)], ASCIIByte.hexDigits[Int(byte & 0xF)]], as: UTF8.self)
}

// MARK: - Serialization

extension JSONValue {
    /// Compact JSON text: no whitespace, object keys sorted by code point, so
    /// equal values always give identical text.
    ///
    /// Serialization is total. JSON has no NaN or infinity, so a non-finite
    /// `.double` is written as `null` (as JavaScript's `JSON.stringify` does);
    /// the parser never produces one, so only values built in code (e.g. a
    /// task computing `0/0`) are affected.
    public var jsonString: String {
        String(decoding: jsonBytes, as: UTF8.self)
    }

    /// ``jsonString`` as UTF-8 bytes, ready to be a Kafka message value.
    public var jsonBytes: [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64)
        write(to: &buffer)
        return buffer
    }

    /// Appends ``jsonString``'s UTF-8 bytes to `buffer`.
    public func write(to buffer: inout [UInt8]) {
        switch self {
        case .null:
            buffer.append(contentsOf: "null".utf8)
        case .bool(let value):
            buffer.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value):
            writeInteger(value, to: &buffer)
        case .double(let value):
            // `description` is the shortest text that reads back as the same
            // double, and always has a '.' or an exponent ("2.0", "1e+16"),
            // so the value stays a double when parsed again.
            if value.isFinite {
                buffer.append(contentsOf: value.description.utf8)
            } else {
                buffer.append(contentsOf: "null".utf8)
            }
        case .string(let value):
            writeString(value, to: &buffer)
        case .array(let elements):
            buffer.append(ASCIIByte.openBracket)
            for (position, element) in elements.enumerated() {
                if position > 0 { buffer.append(ASCIIByte.comma) }
                element.write(to: &buffer)
            }
            buffer.append(ASCIIByte.closeBracket)
        case .object(let members):
            buffer.append(ASCIIByte.openBrace)
            for (position, member) in members.sorted(by: { $0.key < $1.key }).enumerated() {
                if position > 0 { buffer.append(ASCIIByte.comma) }
                writeString(member.key, to: &buffer)
                buffer.append(ASCIIByte.colon)
                member.value.write(to: &buffer)
            }
            buffer.append(ASCIIByte.closeBrace)
        }
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text, ``jsonString``.
    public var description: String { jsonString }
}

private func writeInteger(_ value: Int64, to buffer: inout [UInt8]) {
    if value < 0 { buffer.append(ASCIIByte.minus) }
    var magnitude = value.magnitude
    let firstDigit = buffer.count
    repeat {
        buffer.append(ASCIIByte.zero + UInt8(magnitude % 10))
        magnitude /= 10
    } while magnitude > 0
    buffer[firstDigit...].reverse()
}

/// Writes `string` quoted, escaping only what JSON requires: quote,
/// backslash and control characters. Other characters, ASCII or not, are
/// copied as UTF-8 in runs.
private func writeString(_ string: String, to buffer: inout [UInt8]) {
    buffer.append(ASCIIByte.quote)
    var string = string
    string.withUTF8 { utf8 in
        var runStart = 0
        for position in utf8.indices {
            let byte = utf8[position]
            guard byte < 0x20 || byte == ASCIIByte.quote || byte == ASCIIByte.backslash else { continue }
            buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<position]))
            buffer.append(ASCIIByte.backslash)
            switch byte {
            case ASCIIByte.quote, ASCIIByte.backslash: buffer.append(byte)
            case ASCIIByte.newline: buffer.append(UInt8(ascii: "n"))
            case ASCIIByte.carriageReturn: buffer.append(UInt8(ascii: "r"))
            case ASCIIByte.tab: buffer.append(UInt8(ascii: "t"))
            case 0x08: buffer.append(UInt8(ascii: "b"))
            case 0x0C: buffer.append(UInt8(ascii: "f"))
            default:
                buffer.append(contentsOf: "u00".utf8)
                buffer.append(ASCIIByte.hexDigits[Int(byte >> 4)])
                buffer.append(ASCIIByte.hexDigits[Int(byte & 0xF)])
            }
            runStart = position + 1
        }
        buffer.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
    }
    buffer.append(ASCIIByte.quote)
}

// MARK: - Shared byte helpers

/// ASCII code points used by the JSON and task-line parsers.
enum ASCIIByte {
    static let tab = UInt8(ascii: "\t")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let quote = UInt8(ascii: "\"")
    static let hash = UInt8(ascii: "#")
    static let plus = UInt8(ascii: "+")
    static let comma = UInt8(ascii: ",")
    static let minus = UInt8(ascii: "-")
    static let dot = UInt8(ascii: ".")
    static let slash = UInt8(ascii: "/")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let colon = UInt8(ascii: ":")
    static let openBracket = UInt8(ascii: "[")
    static let backslash = UInt8(ascii: "\\")
    static let closeBracket = UInt8(ascii: "]")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let hexDigits = Array("0123456789abcdef".utf8)
}

/// UTF-8 input handling shared by the JSON and task-line parsers.
enum UTF8Input {
    /// Runs `body` over the bytes as one contiguous buffer, copying them only
    /// when the collection is not contiguous already (`[UInt8]`, native
    /// `String.UTF8View` and `Data` are).
    static func withContiguous<Value, Failure: Error>(
        _ bytes: some Collection<UInt8>,
        _ body: (UnsafeBufferPointer<UInt8>) throws(Failure) -> Value
    ) throws(Failure) -> Value {
        // `withContiguousStorageIfAvailable` is `rethrows`, which would erase
        // the typed error, so the outcome travels out as a `Result`.
        func run(_ buffer: UnsafeBufferPointer<UInt8>) -> Result<Value, Failure> {
            Result { () throws(Failure) in try body(buffer) }
        }
        let outcome = bytes.withContiguousStorageIfAvailable(run) ?? Array(bytes).withUnsafeBufferPointer(run)
        return try outcome.get()
    }

    /// Whether all of `bytes` is well-formed UTF-8.
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        while index < bytes.count {
            if bytes[index] < 0x80 {
                index += 1
            } else if let length = sequenceLength(in: bytes, at: index) {
                index += length
            } else {
                return false
            }
        }
        return true
    }

    /// The length of the well-formed multi-byte UTF-8 sequence starting at
    /// `index` (RFC 3629: no overlong forms, surrogates or values beyond
    /// U+10FFFF), or `nil` if it is malformed or cut off.
    static func sequenceLength(in bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int? {
        let length: Int
        // The allowed range of the second byte is what excludes overlong
        // forms (E0, F0), UTF-16 surrogates (ED) and values past U+10FFFF (F4).
        let second: ClosedRange<UInt8>
        switch bytes[index] {
        case 0xC2...0xDF: (length, second) = (2, 0x80...0xBF)
        case 0xE0: (length, second) = (3, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, second) = (3, 0x80...0xBF)
        case 0xED: (length, second) = (3, 0x80...0x9F)
        case 0xF0: (length, second) = (4, 0x90...0xBF)
        case 0xF1...0xF3: (length, second) = (4, 0x80...0xBF)
        case 0xF4: (length, second) = (4, 0x80...0x8F)
        default: return nil
        }
        guard index + length <= bytes.count, second.contains(bytes[index + 1]) else { return nil }
        for position in index + 2 ..< index + length where bytes[position] & 0xC0 != 0x80 {
            return nil
        }
        return length
    }
}
