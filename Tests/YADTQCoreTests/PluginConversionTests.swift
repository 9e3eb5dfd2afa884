import Testing
import YADTQCore

/// JSON <-> Lua conversion, through task arguments, results and json.encode/json.decode.
@Suite("Plugin value conversion")
struct PluginConversionTests {
    private let folder: PluginFolder

    init() throws {
        folder = try PluginFolder([
            "echo.lua": plugin("return args"),
            "first.lua": plugin("return args[1]"),
            "json_round_trip.lua": plugin("return json.decode(json.encode(args))"),
            "encode.lua": plugin("return json.encode(args[1])"),
            "decode.lua": plugin("return json.decode(args[1])"),
            "result.lua": plugin("return load('return ' .. args[1])()"),
            "types.lua": plugin("""
                local kinds = {}
                for i, v in ipairs(args) do
                  kinds[i] = v == json.null and "null" or math.type(v) or type(v)
                end
                return kinds
                """),
        ])
    }

    static let samples: [JSONValue] = [
        .null, .bool(true), .bool(false),
        .int(0), .int(-7), .int(Int64.max), .int(Int64.min),
        .double(1.0), .double(-0.5), .double(1e300), .double(2.5e-308),
        .string(""), .string("héllo wörld ✓ 😀"), .string("nul\u{0}inside"), .string("\"quotes\" and \\ and \n"),
        .array([]), .array([.int(1), .null, .string("x")]),
        .object(["a": .int(1), "b": .array([.double(2.0), .object(["c": .null])]), "with space": .bool(true)]),
        .array([.array([.array([.array([.int(1)])])])]),
    ]

    @Test(arguments: samples)
    func argumentsRoundTrip(_ value: JSONValue) {
        #expect(folder.run("first", [value]).value == value)
        #expect(folder.run("json_round_trip", [value]).value == .array([value]))
    }

    @Test func everyArgumentKeepsItsPlace() {
        #expect(folder.run("echo", Self.samples).value == .array(Self.samples))
        #expect(folder.run("echo", []).value == .array([]))
    }

    @Test func luaSeesIntegersFloatsAndNull() {
        let kinds = folder.run("types", [.int(1), .double(1.0), .null, .string("s"), .bool(true), .array([]), .object(["k": .int(1)])]).value
        #expect(kinds == .array(["integer", "float", "null", "string", "boolean", "table", "table"].map { .string($0) }))
    }

    @Test func luaValuesBecomeJSON() {
        func result(_ expression: String) -> JSONValue? { folder.run("result", [.string(expression)]).value }
        #expect(result("nil") == .null)
        #expect(result("3") == .int(3))
        #expect(result("3.0") == .double(3.0))
        #expect(result("7 // 2") == .int(3))
        #expect(result("7 / 2") == .double(3.5))
        #expect(result("2^53") == .double(9007199254740992))
        #expect(result("math.maxinteger") == .int(Int64.max))
        #expect(result("{}") == .array([]))  // documented: an empty table is an empty array
        #expect(result("{1, 2, json.null, 4}") == .array([.int(1), .int(2), .null, .int(4)]))
        #expect(result("{a = {b = {c = 'd'}}, n = json.null}") == .object(["a": .object(["b": .object(["c": .string("d")])]), "n": .null]))
        #expect(result("setmetatable({}, {__index = {hidden = 1}})") == .array([]))  // raw contents only
        #expect(result("(function() local shared = {1} return {shared, shared} end)()") == .array([.array([.int(1)]), .array([.int(1)])]))
    }

    @Test(arguments: [
        ("0/0", "result is not JSON-encodable: result is"),
        ("{1/0}", "result is not JSON-encodable: result[1] is inf"),
        ("{f = print}", "result is not JSON-encodable: result.f is a function"),
        ("{co = coroutine.create(print)}", "result.co is a thread"),
        ("(function() local t = {} t.self = t return t end)()", "result.self is a table that contains itself"),
        ("{1, 2, nil, 4}", "result is not an array: its 3 integer keys are not 1..3 (lowest 1, highest 4)"),
        ("{[0] = 'zero'}", "are not 1..1"),
        ("{1, a = 2}", "result mixes integer and string keys"),
        ("{[1.5] = true}", "result has a key that is the float 1.5"),
        ("{[true] = 1}", "result has a key that is a boolean"),
        (#"{'\255'}"#, "result[1] is not valid UTF-8 text"),
        (#"{['\255'] = 1}"#, "result has a key that is not valid UTF-8 text"),
    ])
    func valuesWithoutJSONFormFail(_ expression: String, _ expected: String) throws {
        let failure = try #require(folder.run("result", [.string(expression)]).failure)
        #expect(failure.message.contains(expected), "\(failure.message)")
        #expect(!failure.isPermanent)
    }

    @Test func deepNestingIsBounded() throws {
        let deep = folder.run("result", [.string("(function() local t = {} for i = 1, 600 do t = {t} end return t end)()")])
        #expect(deep.failure?.message.contains("nested deeper than 512 levels") == true)
        var nested = JSONValue.int(1)
        for _ in 0..<500 { nested = .array([nested]) }
        #expect(folder.run("first", [nested]).value == nested)
    }

    @Test func jsonEncodeAndDecode() throws {
        #expect(folder.run("encode", [.object(["b": .int(1), "a": .array([.double(1.5), .null])])]).value == .string(#"{"a":[1.5,null],"b":1}"#))
        #expect(folder.run("decode", [.string(#"{"x": [1, 2.0, null, "s"]}"#)]).value == .object(["x": .array([.int(1), .double(2.0), .null, .string("s")])]))
        let badText = try #require(folder.run("decode", [.string("{oops")]).failure)
        #expect(badText.message.hasPrefix("decode.lua:2: json.decode: "), "\(badText.message)")
        let notText = try #require(folder.run("decode", [.int(1)]).failure)
        #expect(notText.message.contains("json.decode expects a string of JSON text, not number"))
        let badValue = try #require(folder.run("result", [.string("json.encode({f = print})")]).failure)
        #expect(badValue.message.contains("json.encode: value.f is a function"), "\(badValue.message)")
    }
}
