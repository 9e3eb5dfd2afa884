/// `yadtq-web --secure-cookies` / `YADTQ_WEB_SECURE_COOKIES`: whether the session and CSRF
/// cookies are marked `Secure`, so that a browser sends them over HTTPS only. Off by default:
/// the server itself speaks plain HTTP, and a browser that reaches it so would not send such
/// cookies back (no sign-in, no form would work); turn it on behind a TLS proxy.
public enum SecureCookies {
    /// The variable's values that turn it on and off (read in any case; empty is off).
    public static let on = ["yes", "true", "1"]
    public static let off = ["no", "false", "0"]

    /// Whether the cookies are `Secure`: the flag turns it on, else the variable decides. A
    /// value the variable cannot mean is refused, naming the known ones, rather than leaving
    /// the cookies unmarked when the operator meant them marked.
    public static func isOn(flag: Bool, environment: [String: String]) throws -> Bool {
        if flag { return true }
        let text = environment["YADTQ_WEB_SECURE_COOKIES"] ?? ""
        let value = text.lowercased()
        if value.isEmpty || off.contains(value) { return false }
        guard on.contains(value) else {
            throw YADTQError(
                .configuration, "YADTQ_WEB_SECURE_COOKIES='\(TerminalText.escaped(text))' is neither on nor off",
                remedy: "Give " + on.joined(separator: ", ") + " to mark the cookies Secure, or "
                    + off.joined(separator: ", ") + " (in any case)")
        }
        return true
    }
}
