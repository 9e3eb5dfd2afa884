/// The rule for `YADTQ_WEB_TOKEN`, checked when `yadtq-web` starts: a token with a trailing
/// newline (`echo` into a secret, a Kubernetes secret made from a file) or any other
/// whitespace at its ends, or with control characters, could never be typed in the login
/// form or sent in an `Authorization` header, so the server would refuse everyone.
public enum WebToken {
    /// The token the environment sets; `nil` when it sets none (unset or empty).
    public static func read(from environment: [String: String]) throws -> String? {
        guard let token = environment["YADTQ_WEB_TOKEN"], !token.isEmpty else { return nil }
        if let problem = problem(with: token) {
            throw YADTQError(
                .configuration, "YADTQ_WEB_TOKEN \(problem)",
                remedy: "Set it without them: printf '%s' \"$TOKEN\" rather than echo, "
                    + "or trim the secret's trailing newline")
        }
        return token
    }

    /// What is wrong with `token`, never showing it; `nil` when nothing.
    public static func problem(with token: String) -> String? {
        let scalars = token.unicodeScalars
        func name(_ scalar: Unicode.Scalar) -> String {
            switch scalar {
            case "\n": "a newline"
            case "\r": "a carriage return"
            case "\t": "a tab"
            case " ": "a space"
            default: "U+\(String(scalar.value, radix: 16, uppercase: true))"
            }
        }
        if let first = scalars.first, first.properties.isWhitespace { return "starts with \(name(first))" }
        if let last = scalars.last, last.properties.isWhitespace { return "ends with \(name(last))" }
        if let control = scalars.first(where: {
            $0.properties.generalCategory == .control || $0.properties.generalCategory == .format
                || $0.properties.generalCategory == .lineSeparator || $0.properties.generalCategory == .paragraphSeparator
        }) {
            return "has a control character (\(name(control))) in it"
        }
        return nil
    }
}
