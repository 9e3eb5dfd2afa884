/// `yadtq-web --secure-cookies` / `YADTQ_WEB_SECURE_COOKIES`: whether the session and CSRF
/// cookies are marked `Secure`, so that a browser sends them over HTTPS only. Off by default:
/// the server itself speaks plain HTTP, and a browser that reaches it so would not send such
/// cookies back (no sign-in, no form would work); turn it on behind a TLS proxy.
public enum SecureCookies {
    /// Whether the cookies are `Secure`: the flag turns it on, else the variable decides, read
    /// in any case with the words of ``SwitchWord`` (empty is off). A value the variable cannot
    /// mean is refused, naming the known ones, rather than leaving the cookies unmarked when the
    /// operator meant them marked.
    public static func isOn(flag: Bool, environment: [String: String]) throws -> Bool {
        if flag { return true }
        let text = environment["YADTQ_WEB_SECURE_COOKIES"] ?? ""
        if text.isEmpty { return false }
        guard let on = SwitchWord.meaning(of: text.lowercased()) else {
            throw YADTQError(
                .configuration, "YADTQ_WEB_SECURE_COOKIES='\(TerminalText.escaped(text))' is neither on nor off",
                remedy: "Give "
                    + SwitchWord.choices(on: "to mark the cookies Secure", off: "to leave them unmarked")
                    + " (in any case)")
        }
        return on
    }
}
