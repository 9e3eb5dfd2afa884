/// A JSON document as YADTQ stores and exchanges it: task arguments, results and
/// every Kafka message value.
///
/// Integers and floating-point numbers are kept apart (`1` stays `.int(1)`,
/// `1.0` stays `.double(1.0)`), which Foundation's `JSONSerialization` cannot
/// promise and Lua 5.4 needs. Objects serialize with their keys sorted so the
/// same value always has the same text.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

// MARK: - Accessors

extension JSONValue {
    /// How many arrays and objects deep the value nests: 0 for a scalar, 1 for `[1]`,
    /// 2 for `[[1]]`, the way the parser counts against ``maximumNestingDepth``.
    public var nestingDepth: Int {
        switch self {
        case .array(let elements): 1 + (elements.lazy.map(\.nestingDepth).max() ?? 0)
        case .object(let members): 1 + (members.values.lazy.map(\.nestingDepth).max() ?? 0)
        default: 0
        }
    }

    /// Whether the value is or holds a `.double`.
    public var holdsDouble: Bool {
        switch self {
        case .double: true
        case .array(let elements): elements.contains { $0.holdsDouble }
        case .object(let members): members.values.contains { $0.holdsDouble }
        default: false
        }
    }

    /// The string, if this is `.string`.
    public var stringValue: String? {
        if case .string(let value) = self { value } else { nil }
    }

    /// The integer, if this is `.int`. A `.double` is not converted, even when
    /// integral: the distinction is part of the value.
    public var intValue: Int64? {
        if case .int(let value) = self { value } else { nil }
    }

    /// The number as a `Double`, if this is `.double` or `.int` (an `.int`
    /// beyond ±2^53 is rounded to the nearest double).
    public var doubleValue: Double? {
        switch self {
        case .double(let value): value
        case .int(let value): Double(value)
        default: nil
        }
    }

    /// The Boolean, if this is `.bool`.
    public var boolValue: Bool? {
        if case .bool(let value) = self { value } else { nil }
    }

    /// The elements, if this is `.array`.
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { value } else { nil }
    }

    /// The members, if this is `.object`.
    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { value } else { nil }
    }

    /// Whether this is `.null`.
    public var isNull: Bool { self == .null }

    /// The member named `key` of an object; `nil` when it is missing or this
    /// is not an object.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// The element at `index` of an array; `nil` when it is out of range or
    /// this is not an array.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// A repeated key keeps its last value (code only: parsing JSON text refuses one).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}
