/// The words that turn an on/off setting on or off: one list for every such setting
/// (`YADTQ_WEB_SECURE_COOKIES`, the `cluster=` option of `YADTQ_REDIS`), so that a word that
/// works for one works for all, and every refusal names the same words.
public enum SwitchWord {
    /// The words that turn a setting on.
    public static let on = ["yes", "true", "1"]
    /// The words that turn a setting off.
    public static let off = ["no", "false", "0"]

    /// Whether `word` turns the setting on (`true`) or off (`false`); `nil` for any other word.
    /// Exact: a setting read in any case lower-cases its value first.
    public static func meaning(of word: String) -> Bool? {
        if on.contains(word) { return true }
        if off.contains(word) { return false }
        return nil
    }

    /// What a refusal tells the operator to give, each list with what it does:
    /// `yes, true, 1 <onEffect>, or no, false, 0 <offEffect>`.
    public static func choices(on onEffect: String, off offEffect: String) -> String {
        on.joined(separator: ", ") + " " + onEffect + ", or " + off.joined(separator: ", ") + " " + offEffect
    }
}
