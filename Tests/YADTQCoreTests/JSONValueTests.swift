import Testing
import YADTQCore

/// Parses `text`, failing the test (and returning `nil`) if it does not parse.
private func parse(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> JSONValue? {
    do {
        return try JSONValue(parsing: text)
    } catch {
        Issue.record("\(text) did not parse: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The error parsing `text` throws, failing the test if it parses.
private func parseError(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> JSONParseError? {
    parseError(bytes: Array(text.utf8), sourceLocation: sourceLocation)
}

private func parseError(bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> JSONParseError? {
    do {
        let value = try JSONValue(parsing: bytes)
        Issue.record("\(bytes) parsed as \(value) but should fail", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// `depth` arrays nested in each other around `1`.
private func nestedArrays(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)
}

@Suite("JSON parsing")
struct JSONParsingTests {
    @Test func scalars() {
        #expect(parse("null") == .null)
        #expect(parse("true") == .bool(true))
        #expect(parse("false") == .bool(false))
        #expect(parse("\"hi\"") == .string("hi"))
        #expect(parse("  \t\r\n 42 \n") == .int(42))
    }

    @Test("integers stay .int, anything else is .double", arguments: [
        ("0", JSONValue.int(0)),
        ("-0", .int(0)),
        ("7", .int(7)),
        ("-12", .int(-12)),
        ("9223372036854775807", .int(.max)),
        ("-9223372036854775808", .int(.min)),
        ("9223372036854775808", .double(9223372036854775808.0)),
        ("-9223372036854775809", .double(-9223372036854775809.0)),
        ("123456789012345678901234567890", .double(1.2345678901234568e29)),
        ("1.0", .double(1.0)),
        ("2.5", .double(2.5)),
        ("-0.0", .double(-0.0)),
        ("1e2", .double(100)),
        ("1E+2", .double(100)),
        ("25e-1", .double(2.5)),
        ("0.1", .double(0.1)),
        ("1.7976931348623157e308", .double(.greatestFiniteMagnitude)),
        ("5e-324", .double(.leastNonzeroMagnitude)),
        ("1e-400", .double(0)),
    ])
    func numbers(text: String, expected: JSONValue) {
        #expect(parse(text) == expected)
    }

    @Test func negativeZeroDoubleKeepsItsSign() throws {
        let value = try #require(parse("-0.0")?.doubleValue)
        #expect(value.sign == .minus)
    }

    @Test("malformed numbers are rejected", arguments: [
        "01", "-01", "00", "-", "+1", ".5", "1.", "1.e3", "1e", "1e+", "0x10", "Infinity", "-Infinity", "NaN", "1.5.2",
    ])
    func malformedNumbers(text: String) {
        #expect(parseError(text) != nil)
    }

    @Test func leadingZeroError() throws {
        let error = try #require(parseError("[01]"))
        #expect(error.offset == 1)
        #expect(error.reason.contains("leading zero"))
    }

    @Test func numberTooLargeForDouble() throws {
        let error = try #require(parseError("[1, 1e400]"))
        #expect(error.offset == 4)
        #expect(error.reason.contains("out of range"))
    }

    @Test func escapes() {
        #expect(parse(#""\" \\ \/ \b \f \n \r \t""#) == .string("\" \\ / \u{08} \u{0C} \n \r \t"))
        #expect(parse(#""\u0041\u00e9\u4E2D\u0000""#) == .string("Aé中\u{0}"))
        #expect(parse(#""a\nb" "#) == .string("a\nb"))
        #expect(parse(#""plain before \t and after""#) == .string("plain before \t and after"))
    }

    @Test func surrogatePairs() {
        #expect(parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(parse(#""x\uD834\uDD1Ey""#) == .string("x𝄞y"))
    }

    @Test("lone surrogates decode to U+FFFD", arguments: [
        (#""\ud800""#, "\u{FFFD}"),
        (#""\udc00x""#, "\u{FFFD}x"),
        (#""\ud800\u0041""#, "\u{FFFD}A"),
        (#""\ud800\ud800\udc00""#, "\u{FFFD}𐀀"),
        (#""\ud800\n""#, "\u{FFFD}\n"),
    ])
    func loneSurrogates(text: String, expected: String) {
        #expect(parse(text) == .string(expected))
    }

    @Test func rawUnicodePassesThrough() {
        #expect(parse("\"héllo wörld 中文 😀\"") == .string("héllo wörld 中文 😀"))
        #expect(parse("{\"clé\": \"✓\"}") == .object(["clé": "✓"]))
    }

    @Test("malformed strings are rejected", arguments: [
        (#""abc"#, "unterminated string", 0),
        (#"["abc"#, "unterminated string", 1),
        (#""a\"#, "unterminated escape", 2),
        (#""\x""#, "invalid escape sequence '\\x'", 1),
        (#""\u12""#, "\\u escape", 5),
        (#""\u12G4""#, "character 'G'", 5),
        ("\"a\tb\"", "control character 0x09", 2),
        ("\"a\nb\"", "control character 0x0a", 2),
        ("'single'", "character '''", 0),
    ])
    func malformedStrings(text: String, reason: String, offset: Int) throws {
        let error = try #require(parseError(text))
        #expect(error.reason.contains(reason), "\(error)")
        #expect(error.offset == offset, "\(error)")
    }

    @Test("invalid UTF-8 is rejected", arguments: [
        [0x22, 0xFF, 0x22],  // never valid
        [0x22, 0xC3, 0x22],  // truncated 2-byte sequence
        [0x22, 0xC0, 0x80, 0x22],  // overlong NUL
        [0x22, 0xE0, 0x80, 0x80, 0x22],  // overlong 3-byte form
        [0x22, 0xED, 0xA0, 0x80, 0x22],  // UTF-8-encoded surrogate
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // beyond U+10FFFF
        [0x22, 0xF0, 0x9F, 0x98, 0x22],  // truncated 4-byte sequence
        [0xC3, 0xA9],  // non-ASCII outside a string
    ] as [[UInt8]])
    func invalidUTF8(bytes: [UInt8]) throws {
        let error = try #require(parseError(bytes: bytes))
        #expect(error.offset <= 1)
    }

    @Test func validFourByteUTF8() throws {
        #expect(try JSONValue(parsing: [0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22] as [UInt8]) == .string("😀"))
    }

    @Test func containers() {
        #expect(parse("[]") == .array([]))
        #expect(parse("{}") == .object([:]))
        #expect(parse(" [ 1 , \"a\" , [ ] , { } , null ] ") == [1, "a", [], [:], nil])
        #expect(parse(#"{"a": {"b": [true, 2.5]}, "c": null}"#) == ["a": ["b": [true, 2.5]], "c": nil])
    }

    @Test("a key twice in one object is refused, at any depth, naming the key; the same key in different objects reads")
    func repeatedKeyIsRefused() {
        let cases: [(String, String, Int)] = [
            (#"{"a": 1, "a": 2}"#, #"key "a" appears twice"#, 9),
            (#"{"type":"add","type":"mul"}"#, #"key "type" appears twice"#, 14),
            (#"{"status":"CANCELLED","status":"FAILED"}"#, #"key "status" appears twice"#, 22),
            (#"[1, {"a": {"b": 1, "b": 1}}]"#, #"key "b" appears twice"#, 19),
            (#"{"a\u0062": 1, "ab": 2}"#, #"key "ab" appears twice"#, 15),
        ]
        for (text, reason, offset) in cases {
            #expect(parseError(text) == JSONParseError(offset: offset, reason: reason), "\(text)")
        }
        #expect(parse(#"[{"a": 1}, {"a": 2, "b": {"a": 3}}]"#) == [["a": 1], ["a": 2, "b": ["a": 3]]])
    }

    @Test("a stored heartbeat, a document YADTQ writes itself, reads back under the repeated-key rule")
    func ownDocuments() throws {
        let beat = Heartbeat(
            lastHeartbeat: 5, state: .idle, currentTask: nil, taskStartedAt: nil, pid: 1, host: "h", startedAt: 0,
            timeLimitMilliseconds: 1_000, intervalMilliseconds: 1_000)
        #expect(try Heartbeat(parsing: beat.json.jsonString).lastHeartbeat == 5)
    }

    @Test("an integer beyond 64 bits is the nearest double, or refused with its path when asked")
    func wideIntegers() throws {
        #expect(parse("99999999999999999999999") == .double(1e23))
        #expect(parse("-9223372036854775808") == .int(.min))
        do {
            _ = try JSONValue(parsing: #"[1, {"n": 99999999999999999999999}]"#, wideIntegers: .refuse)
            Issue.record("a wide integer was accepted")
        } catch {
            #expect(error.kind == .integerBeyond64Bits && error.path == [.index(1), .key("n")])
        }
        #expect(try JSONValue(parsing: "[1e23, 2.5, 9223372036854775807]", wideIntegers: .refuse)
            == [.double(1e23), .double(2.5), .int(.max)])
    }

    @Test("structural errors report reason and offset", arguments: [
        ("", "unexpected end of input", 0),
        ("   ", "unexpected end of input", 3),
        ("[1,]", "unexpected character ']', expected a JSON value", 3),
        ("[1 2]", "expected ',' or ']'", 3),
        ("[1", "unexpected end of input, expected ',' or ']'", 2),
        (#"{"a" 1}"#, "expected ':'", 5),
        (#"{"a": 1,}"#, "expected a string key", 8),
        ("{a: 1}", "expected a string key", 1),
        (#"{"a": 1"#, "expected ',' or '}'", 7),
        ("tru", "expected 'true'", 0),
        ("nul", "expected 'null'", 0),
        ("1 2", "unexpected character '2' after the JSON value", 2),
        ("{} x", "after the JSON value", 3),
        ("[1] // comment", "after the JSON value", 4),
        ("\u{0}", "control character 0x00", 0),
    ])
    func structuralErrors(text: String, reason: String, offset: Int) throws {
        let error = try #require(parseError(text))
        #expect(error.reason.contains(reason), "\(error)")
        #expect(error.offset == offset, "\(error)")
    }

    @Test func errorDescriptionNamesByteOffset() throws {
        let error = try #require(parseError(#"{"type": x}"#))
        #expect(error.description == "unexpected character 'x', expected a JSON value at byte 9")
        #expect(error == JSONParseError(offset: 9, reason: "unexpected character 'x', expected a JSON value"))
    }

    @Test func nestingUpToTheLimitParses() throws {
        var value = try #require(parse(nestedArrays(JSONValue.maximumNestingDepth)))
        for _ in 0..<JSONValue.maximumNestingDepth {
            value = try #require(value[0])
        }
        #expect(value == 1)
    }

    @Test func nestingBeyondTheLimitIsAnError() throws {
        let error = try #require(parseError(nestedArrays(JSONValue.maximumNestingDepth + 1)))
        #expect(error.offset == JSONValue.maximumNestingDepth)
        #expect(error.reason.contains("nested deeper than 512"))
        let objects = String(repeating: #"{"a":"#, count: 600) + "1" + String(repeating: "}", count: 600)
        #expect(parseError(objects) != nil)
    }

    @Test func hugeNestingDoesNotOverflowTheStack() {
        #expect(parseError(String(repeating: "[", count: 1_000_000)) != nil)
    }

    @Test func acceptsAnyByteCollection() throws {
        let text = #"{"args": [1, "two"]}"#
        let expected: JSONValue = ["args": [1, "two"]]
        #expect(try JSONValue(parsing: Array(text.utf8)) == expected)
        #expect(try JSONValue(parsing: Array(text.utf8)[...]) == expected)
        #expect(try Array(text.utf8).withUnsafeBytes { raw in try JSONValue(parsing: raw) } == expected)
        // Not contiguous: exercises the copying path.
        #expect(try JSONValue(parsing: AnyCollection(text.utf8)) == expected)
        #expect(try JSONValue(parsing: Substring("xx" + text).dropFirst(2).utf8) == expected)
    }
}

@Suite("JSON serialization")
struct JSONSerializationTests {
    @Test func compactWithSortedKeys() {
        let value: JSONValue = ["type": "add", "args": [1, 2], "id": "t-1", "max_attempts": 3, "b": ["z": nil, "a": true]]
        #expect(value.jsonString == #"{"args":[1,2],"b":{"a":true,"z":null},"id":"t-1","max_attempts":3,"type":"add"}"#)
        #expect(value.description == value.jsonString)
        #expect(value.jsonBytes == Array(value.jsonString.utf8))
    }

    @Test func scalars() {
        #expect(JSONValue.null.jsonString == "null")
        #expect(JSONValue.bool(true).jsonString == "true")
        #expect(JSONValue.bool(false).jsonString == "false")
        #expect(JSONValue.array([]).jsonString == "[]")
        #expect(JSONValue.object([:]).jsonString == "{}")
    }

    @Test("integers", arguments: [
        (Int64(0), "0"), (7, "7"), (-7, "-7"), (1_764_380_000_000, "1764380000000"),
        (.max, "9223372036854775807"), (.min, "-9223372036854775808"),
    ])
    func integers(value: Int64, text: String) {
        #expect(JSONValue.int(value).jsonString == text)
    }

    @Test("doubles use the shortest round-trip text and stay doubles", arguments: [
        (2.0, "2.0"), (-0.0, "-0.0"), (0.1, "0.1"), (2.5, "2.5"), (1e16, "1e+16"), (1e-5, "1e-05"),
        (123456789.125, "123456789.125"), (.greatestFiniteMagnitude, "1.7976931348623157e+308"),
        (.leastNonzeroMagnitude, "5e-324"),
    ])
    func doubles(value: Double, text: String) throws {
        #expect(JSONValue.double(value).jsonString == text)
        #expect(try JSONValue(parsing: text) == .double(value))
    }

    @Test("non-finite doubles are written as null", arguments: [Double.nan, .infinity, -.infinity])
    func nonFiniteDoubles(value: Double) {
        #expect(JSONValue.double(value).jsonString == "null")
        #expect(JSONValue.array([.double(value), 1]).jsonString == "[null,1]")
    }

    @Test func stringEscapes() {
        #expect(JSONValue.string("say \"hi\" \\ o/").jsonString == #""say \"hi\" \\ o/""#)
        #expect(JSONValue.string("\n\r\t\u{08}\u{0C}").jsonString == #""\n\r\t\b\f""#)
        #expect(JSONValue.string("\u{0}\u{1}\u{1F}\u{7F}").jsonString == "\"\\u0000\\u0001\\u001f\u{7F}\"")
        #expect(JSONValue.string("").jsonString == #""""#)
    }

    @Test func nonASCIIPassesThroughAsUTF8() {
        let value = JSONValue.string("héllo 中文 😀")
        #expect(value.jsonString == "\"héllo 中文 😀\"")
        #expect(value.jsonBytes == Array("\"héllo 中文 😀\"".utf8))
    }

    @Test func keysAreEscapedAndSorted() {
        let value: JSONValue = ["b\"": 1, "a\n": 2, "é": 3, "Z": 4]
        #expect(value.jsonString == #"{"Z":4,"a\n":2,"b\"":1,"é":3}"#)
    }

    @Test func writeAppendsToTheBuffer() {
        var buffer = Array("prefix:".utf8)
        JSONValue.array([1, "x"]).write(to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == #"prefix:[1,"x"]"#)
    }
}

@Suite("JSON round trips")
struct JSONRoundTripTests {
    @Test("parse, serialize, parse gives the same value and canonical text", arguments: [
        #"{"id":"3f2b9c1e","type":"add","args":[1,2],"max_attempts":3,"queued_at":1764380000000}"#,
        #"[1, 1.0, -0.5, 1e300, 9223372036854775807, -9223372036854775808, 9223372036854775808]"#,
        #"{"s": "tab\t quote\" back\\ nul\u0000 é \ud83d\ude00", "nested": [[[{}]]], "n": null, "b": [true, false]}"#,
        #""\u001f\u007f\u2028""#,
        #"{"z": 1, "a": {"y": [], "b": {}}}"#,
    ])
    func documents(text: String) throws {
        let value = try JSONValue(parsing: text)
        let serialized = value.jsonString
        let reparsed = try JSONValue(parsing: serialized)
        #expect(reparsed == value)
        #expect(reparsed.jsonString == serialized)
    }

    @Test func intAndDoubleFidelity() throws {
        let value: JSONValue = [1, 1.0, 2, 2.0, -3, -3.0, 1e20, 0.0]
        let reparsed = try JSONValue(parsing: value.jsonString)
        #expect(reparsed == value)
        #expect(reparsed.arrayValue?.map(\.intValue) == [1, nil, 2, nil, -3, nil, nil, nil])
    }

    @Test func manyDoublesRoundTripExactly() throws {
        // A fixed pseudo-random walk over bit patterns: reproducible, and
        // covers subnormals, huge exponents and long mantissas.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<5_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let double = Double(bitPattern: state)
            guard double.isFinite else { continue }
            let text = JSONValue.double(double).jsonString
            let reparsed = try JSONValue(parsing: text)
            #expect(reparsed.doubleValue?.bitPattern == double.bitPattern, "\(text)")
            #expect(reparsed.intValue == nil, "\(text)")
        }
    }

    @Test func allEscapedControlCharactersRoundTrip() throws {
        let text = String(decoding: (0..<0x80).map { UInt8($0) }, as: UTF8.self)
        #expect(try JSONValue(parsing: JSONValue.string(text).jsonString) == .string(text))
    }
}

@Suite("JSONValue accessors and literals")
struct JSONValueAccessorTests {
    let value: JSONValue = ["name": "x", "count": 3, "ratio": 0.5, "ok": true, "list": [1, "a"], "none": nil]

    @Test func typedAccessors() {
        #expect(value["name"]?.stringValue == "x")
        #expect(value["count"]?.intValue == 3)
        #expect(value["count"]?.doubleValue == 3.0)
        #expect(value["ratio"]?.doubleValue == 0.5)
        #expect(value["ratio"]?.intValue == nil)
        #expect(value["ok"]?.boolValue == true)
        #expect(value["list"]?.arrayValue == [1, "a"])
        #expect(value["none"]?.isNull == true)
        #expect(value.objectValue?.count == 6)
        #expect(value["name"]?.intValue == nil)
        #expect(value["name"]?.arrayValue == nil)
        #expect(value.stringValue == nil)
    }

    @Test func subscripts() {
        #expect(value["missing"] == nil)
        #expect(value["list"]?[1] == "a")
        #expect(value["list"]?[2] == nil)
        #expect(value["list"]?[-1] == nil)
        #expect(value[0] == nil)
        #expect(JSONValue.string("s")["key"] == nil)
    }

    @Test func literals() {
        #expect(value["count"] == .int(3))
        #expect(value["ratio"] == .double(0.5))
        #expect(value["none"] == .null)
        #expect(JSONValue(dictionaryLiteral: ("k", 1), ("k", 2)) == .object(["k": .int(2)]))
    }
}
