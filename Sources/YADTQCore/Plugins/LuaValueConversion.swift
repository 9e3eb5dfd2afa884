import CLua
import CLuaSandbox

// Conversion between JSONValue and Lua values: task arguments and json.decode results go in,
// task results and json.encode arguments come out. The mapping is total (every value converts or
// fails with a message naming where and why) and is the one the README documents:
//
//   JSON                     Lua                        back to JSON
//   null                     json.null (light userdata)  null      (so arrays keep their length)
//   true / false             boolean                     same
//   integer (.int)           integer subtype             .int      (1 stays 1)
//   float (.double)          float subtype               .double   (1.0 stays 1.0)
//   string                   string (UTF-8 bytes)        string
//   array                    table with keys 1..n        array
//   object                   table with string keys      object
//
// Lua to JSON also accepts `nil` (as null) and rejects, with an error:
//   - NaN and ±infinity (JSON has neither);
//   - strings that are not valid UTF-8 (JSON text is Unicode: a plugin that works on bytes must
//     encode them, e.g. as hex; replacing bytes silently would corrupt data);
//   - functions, coroutines and userdata other than json.null;
//   - tables that contain themselves (cycles); a table reached twice without a cycle is copied;
//   - tables with other keys: floats, booleans, integers that are not exactly 1..n (holes), or a
//     mix of integer and string keys;
//   - nesting deeper than YADTQ_MAX_DEPTH (512, as the JSON parser).
// An empty table becomes an empty array `[]`: Lua cannot tell `{}` from `[]`. Metatables are
// ignored: a table converts by its raw contents.

/// Writes JSON values in the flat layout that `yadtq_push_encoded` (CLuaSandbox) turns into Lua values,
/// so the allocations happen in C, where a memory error may safely longjmp.
enum LuaValueEncoding {
    static func append(_ value: JSONValue, to buffer: inout [UInt8]) {
        switch value {
        case .null: buffer.append(UInt8(ascii: "n"))
        case .bool(let flag): buffer.append(UInt8(ascii: flag ? "t" : "f"))
        case .int(let number): appendWord(UInt64(bitPattern: number), tag: "i", to: &buffer)
        case .double(let number): appendWord(number.bitPattern, tag: "d", to: &buffer)
        case .string(let text): appendString(text, to: &buffer)
        case .array(let elements): appendArray(elements, to: &buffer)
        case .object(let members):
            appendWord(UInt64(members.count), tag: "o", to: &buffer)
            for (key, member) in members {
                appendStringBytes(key, to: &buffer)
                append(member, to: &buffer)
            }
        }
    }

    /// Same as appending `.array(elements)`, without building that value first.
    static func appendArray(_ elements: [JSONValue], to buffer: inout [UInt8]) {
        appendWord(UInt64(elements.count), tag: "a", to: &buffer)
        for element in elements { append(element, to: &buffer) }
    }

    private static func appendString(_ text: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "s"))
        appendStringBytes(text, to: &buffer)
    }

    /// Length and bytes, without the tag (object keys are always strings).
    private static func appendStringBytes(_ text: String, to buffer: inout [UInt8]) {
        let utf8 = text.utf8
        appendRaw(UInt64(utf8.count), to: &buffer)
        buffer.append(contentsOf: utf8)
    }

    private static func appendWord(_ word: UInt64, tag: Unicode.Scalar, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: tag))
        appendRaw(word, to: &buffer)
    }

    private static func appendRaw(_ word: UInt64, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: word) { buffer.append(contentsOf: $0) }  // native order, as C reads it
    }
}

/// Why a Lua value has no JSON form: `path` names the value (`result.items[2]`), `problem` says why.
struct LuaConversionError: Error {
    var path: String
    var problem: String
    /// The value has a JSON form, but a longer one than the reader's budget; `path` is where the
    /// budget ran out.
    var isTooLarge = false
    /// Why reading was given up before it was done (`YADTQ_STOPPED_TIME` or `_CANCELLED`, else
    /// `YADTQ_RUNNING`): the running call's deadline passed, or a stop was requested; `path` is where.
    var stoppedBy = Int32(YADTQ_RUNNING)

    var description: String { "\(path) \(problem)" }
}

/// Reads a Lua value as JSON without raising a Lua error: it only uses API functions that cannot
/// longjmp (no allocation, no metamethods), so it may run in a Swift frame.
///
/// It reads under a budget of JSON bytes: a Lua string is stored once however many times a table
/// refers to it, but each reference becomes a copy in JSON, so a value of a few MiB in Lua can
/// stand for gigabytes of text. Every value is counted as the bytes `JSONValue.write` makes of it
/// (escapes included) before it is copied, and reading stops once the budget is spent.
///
/// It reads under the deadline of the call that made the value (and its stop request): the budget
/// does not bound its time, because `lua_next` walks a table's empty slots too, so a table that
/// costs 3 bytes of JSON can cost milliseconds to read, and a value may refer to it a million times.
struct LuaValueReader {
    private let state: OpaquePointer
    private let sandbox: UnsafeMutablePointer<yadtq_sandbox>
    /// Steps (values read, tables walked) since the clock was last looked at.
    private var stepsSinceCheck = 0
    private static let stepsPerCheck = 1024
    /// Tables on the path from the root to the value being read, to detect cycles.
    private var enclosingTables: Set<UnsafeRawPointer> = []
    /// JSON bytes left.
    private var budget: Int

    /// Converts the value at stack `index`; `root` names it in errors (`result`, `value`).
    /// The stack may hold extra values on error: callers reset it.
    /// - Parameter budget: the most bytes its JSON text may have; past it, the reader throws an
    ///   error with `isTooLarge`.
    static func read(_ state: OpaquePointer, at index: Int32, root: String, budget: Int) throws(LuaConversionError) -> JSONValue {
        var reader = LuaValueReader(state: state, budget: budget)
        return try reader.value(at: lua_absindex(state, index), path: root, depth: 0)
    }

    private init(state: OpaquePointer, budget: Int) {
        self.state = state
        self.sandbox = yadtq_sandbox_of(state)
        self.budget = budget
    }

    /// Counts `steps` of reading at `path`, and every ``stepsPerCheck`` of them gives up once the
    /// running call must stop (`yadtq_stop_reason`).
    private mutating func pace(_ steps: Int, path: @autoclosure () -> String) throws(LuaConversionError) {
        stepsSinceCheck += steps
        guard stepsSinceCheck >= Self.stepsPerCheck else { return }
        stepsSinceCheck = 0
        let reason = yadtq_stop_reason(sandbox)
        if reason != YADTQ_RUNNING {
            throw LuaConversionError(path: path(), problem: "was being read when the call had to stop", stoppedBy: reason)
        }
    }

    /// Spends `bytes` of the budget on the value at `path`.
    private mutating func spend(_ bytes: Int, path: @autoclosure () -> String) throws(LuaConversionError) {
        budget -= bytes
        if budget < 0 { throw LuaConversionError(path: path(), problem: "is where the JSON text grows past the limit", isTooLarge: true) }
    }

    /// The bytes of the string at `index` (no copy), and what `JSONValue.write` makes of them: the
    /// quotes, and escapes for quote, backslash and control characters.
    private func stringBytes(at index: Int32) -> (UnsafeRawBufferPointer, jsonLength: Int) {
        var length = 0
        let bytes = UnsafeRawBufferPointer(start: lua_tolstring(state, index, &length)!, count: length)
        var jsonLength = length + 2
        for byte in bytes where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            switch byte {
            case 0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x22, 0x5C: jsonLength += 1  // \b \t \n \f \r \" \\
            default: jsonLength += 5  // \u00XX
            }
        }
        return (bytes, jsonLength)
    }

    /// Reads the string at `index` as JSON text, spending its length.
    private mutating func string(at index: Int32, path: @autoclosure () -> String) throws(LuaConversionError) -> String? {
        let (bytes, jsonLength) = stringBytes(at: index)
        try spend(jsonLength, path: path())
        return String(validating: bytes, as: UTF8.self)
    }

    private mutating func value(at index: Int32, path: @autoclosure () -> String, depth: Int) throws(LuaConversionError) -> JSONValue {
        switch lua_type(state, index) {
        case LUA_TNIL:
            try spend(4, path: path())
            return .null
        case LUA_TBOOLEAN:
            let flag = lua_toboolean(state, index) != 0
            try spend(flag ? 4 : 5, path: path())
            return .bool(flag)
        case LUA_TNUMBER:
            if lua_isinteger(state, index) != 0 {
                let number = lua_tointegerx(state, index, nil)
                var digits = number < 0 ? 2 : 1
                var rest = number.magnitude
                while rest >= 10 {
                    rest /= 10
                    digits += 1
                }
                try spend(digits, path: path())
                return .int(number)
            }
            let number = lua_tonumberx(state, index, nil)
            guard number.isFinite else { throw LuaConversionError(path: path(), problem: "is \(number) (JSON has no NaN or infinity)") }
            try spend(number.description.utf8.count, path: path())  // as JSONValue.write writes it
            return .double(number)
        case LUA_TSTRING:
            guard let text = try string(at: index, path: path()) else {
                throw LuaConversionError(path: path(), problem: "is not valid UTF-8 text (encode binary data, e.g. as hex)")
            }
            return .string(text)
        case LUA_TLIGHTUSERDATA where lua_touserdata(state, index) == nil:
            try spend(4, path: path())
            return .null
        case LUA_TTABLE:
            return try table(at: index, path: path(), depth: depth)
        case let type:
            throw LuaConversionError(path: path(), problem: "is a \(String(cString: lua_typename(state, type))), which has no JSON form")
        }
    }

    private mutating func table(at index: Int32, path: String, depth: Int) throws(LuaConversionError) -> JSONValue {
        guard depth < YADTQ_MAX_DEPTH, lua_checkstack(state, 3) != 0 else {
            throw LuaConversionError(path: path, problem: "is nested deeper than \(YADTQ_MAX_DEPTH) levels")
        }
        let identity = lua_topointer(state, index)!
        guard enclosingTables.insert(identity).inserted else {
            throw LuaConversionError(path: path, problem: "is a table that contains itself (a cycle)")
        }
        defer { enclosingTables.remove(identity) }
        try spend(2, path: path)  // brackets; each element below adds its comma
        try pace(Self.stepsPerCheck, path: path)  // walking it costs its slots, however few it holds


        var elements: [(Int64, JSONValue)] = []
        var members: [String: JSONValue] = [:]
        lua_pushnil(state)
        while lua_next(state, index) != 0 {  // key at -2, value at -1
            try pace(1, path: path)
            let valueIndex = lua_gettop(state)
            switch lua_type(state, -2) {
            case LUA_TNUMBER where lua_isinteger(state, -2) != 0:
                let key = lua_tointegerx(state, -2, nil)
                try spend(1, path: "\(path)[\(key)]")
                let element = try value(at: valueIndex, path: "\(path)[\(key)]", depth: depth + 1)
                elements.append((key, element))
            case LUA_TSTRING:
                guard let key = try string(at: -2, path: path) else {
                    throw LuaConversionError(path: path, problem: "has a key that is not valid UTF-8 text")
                }
                try spend(2, path: path)  // colon and comma
                members[key] = try value(at: valueIndex, path: Self.member(key, of: path), depth: depth + 1)
            case let type:
                let description = type == LUA_TNUMBER ? "the float \(lua_tonumberx(state, -2, nil))" : "a \(String(cString: lua_typename(state, type)))"
                throw LuaConversionError(path: path, problem: "has a key that is \(description); only string keys (an object) or keys 1..n (an array) have a JSON form")
            }
            lua_pop(state, 1)  // the value; lua_next needs the key
        }

        if elements.isEmpty { return members.isEmpty ? .array([]) : .object(members) }
        guard members.isEmpty else {
            throw LuaConversionError(path: path, problem: "mixes integer and string keys, so it is neither an array nor an object")
        }
        // Keys are distinct integers: they are exactly 1..n when all lie in 1...n.
        var array = [JSONValue](repeating: .null, count: elements.count)
        for (key, element) in elements {
            guard key >= 1, key <= Int64(elements.count) else {
                let keys = elements.map(\.0).sorted()
                throw LuaConversionError(
                    path: path,
                    problem: "is not an array: its \(keys.count) integer keys are not 1..\(keys.count) (lowest \(keys.first!), highest \(keys.last!)); fill holes with json.null")
            }
            array[Int(key - 1)] = element
        }
        return .array(array)
    }

    /// The UTF-8 text of the string at `index`, or nil when its bytes are not valid UTF-8.
    static func string(_ state: OpaquePointer, at index: Int32) -> String? {
        var length = 0
        let bytes = lua_tolstring(state, index, &length)!  // a string: no conversion, no allocation
        return bytes.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(validating: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// The number at `index` as Lua prints it: `3` for an integer, `2.5` for a float.
    static func numberText(_ state: OpaquePointer, at index: Int32) -> String {
        lua_isinteger(state, index) != 0 ? "\(lua_tointegerx(state, index, nil))" : "\(lua_tonumberx(state, index, nil))"
    }

    /// `path.key` for identifier-like keys, `path["key"]` for others.
    private static func member(_ key: String, of path: String) -> String {
        let letters = UInt8(ascii: "a")...UInt8(ascii: "z"), digits = UInt8(ascii: "0")...UInt8(ascii: "9")
        func isWordByte(_ byte: UInt8) -> Bool { letters.contains(byte | 0x20) || digits.contains(byte) || byte == UInt8(ascii: "_") }
        let isIdentifier = key.utf8.allSatisfy(isWordByte) && !(key.utf8.first.map(digits.contains) ?? true)
        return isIdentifier ? "\(path).\(key)" : "\(path)[\(JSONValue.string(key).jsonString)]"
    }
}
