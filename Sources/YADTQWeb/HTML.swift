import Foundation

/// A fragment of HTML that is safe to send: literal markup written in this module, with
/// every interpolated value escaped unless it is itself ``HTML``.
///
/// Escaping is the default, so a task's args, result, error, log line or id can never
/// become markup by forgetting a call: `"<td>\(record.id)</td>"` escapes the id.
struct HTML: ExpressibleByStringInterpolation, Sendable, Equatable {
    private(set) var text: String

    init(stringLiteral literal: String) {
        text = literal
    }

    init(stringInterpolation: Interpolation) {
        text = stringInterpolation.text
    }

    /// Joins fragments, e.g. the rows of a table.
    init(joining fragments: some Sequence<HTML>) {
        text = fragments.map(\.text).joined()
    }

    static let empty: HTML = ""

    struct Interpolation: StringInterpolationProtocol {
        fileprivate var text = ""

        init(literalCapacity: Int, interpolationCount: Int) {
            text.reserveCapacity(literalCapacity + 16 * interpolationCount)
        }

        mutating func appendLiteral(_ literal: String) {
            text += literal
        }

        /// Markup built elsewhere in this module, inserted as it is.
        mutating func appendInterpolation(_ fragment: HTML) {
            text += fragment.text
        }

        /// Any other value: escaped text.
        mutating func appendInterpolation(_ value: some CustomStringConvertible) {
            text += HTML.escape(value.description)
        }
    }

    /// `&`, `<`, `>`, `"` and `'` as character references, so the text is safe both
    /// between tags and inside a quoted attribute value.
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}

/// Builds the query string and path pieces of links.
enum URLText {
    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Percent-encodes everything but the unreserved characters, for a path segment or a query value.
    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }

    /// The page of one task, or with `action` (`cancel`, `retry`) the target of its button.
    /// The ids `.` and `..` cannot be a path segment: a browser resolves them, percent-encoded
    /// too, as steps of the path (`/tasks/..` is `/`), so theirs go in the query of `/task`.
    static func task(_ id: String, action: String? = nil) -> String {
        let suffix = action.map { "/" + $0 } ?? ""
        guard id != "." && id != ".." else { return link("/task" + suffix, ["id": id]) }
        return "/tasks/" + encode(id) + suffix
    }

    /// `path?name=value&...`, leaving out empty values.
    static func link(_ path: String, _ query: KeyValuePairs<String, String?>) -> String {
        let parts = query.compactMap { name, value in
            value.flatMap { $0.isEmpty ? nil : name + "=" + encode($0) }
        }
        return parts.isEmpty ? path : path + "?" + parts.joined(separator: "&")
    }
}
