/// The rule for a task topic a user names (`--topic`, `YADTQ_TOPIC`, a worker's topic): Kafka's
/// rule for topic names, checked before the name reaches the broker, which refuses a bad one
/// only with an error that does not say why.
public enum TopicName {
    /// The longest topic name Kafka accepts.
    public static let maximumKafkaLength = 249
    /// What a task topic's dead-letter topic adds to its name (see ``DeadLetterCopy``).
    public static let deadLetterSuffix = ".dlq"
    /// The dead-letter topic of the task topic `topic`: `<topic>.dlq`.
    public static func deadLetter(of topic: String) -> String { topic + deadLetterSuffix }
    /// The longest task topic: its dead-letter topic, `<topic>.dlq`, must be a Kafka topic too.
    public static let maximumLength = maximumKafkaLength - deadLetterSuffix.utf8.count

    /// What is wrong with `topic` as a task topic, in a sentence that says what is allowed;
    /// `nil` when it is a valid one.
    public static func problem(with topic: String) -> String? {
        let rule =
            "a topic is 1 to \(maximumLength) ASCII letters, digits, '.', '_' and '-', other than '.' and '..' "
            + "(Kafka's rule, leaving room for its dead-letter topic <topic>\(deadLetterSuffix))"
        let utf8 = topic.utf8
        if utf8.isEmpty { return "the topic name is empty: \(rule)" }
        if topic == "." || topic == ".." { return "the topic cannot be '\(topic)': \(rule)" }
        if let bad = topic.unicodeScalars.first(where: { !isAllowed($0) }) {
            let shown = bad.isASCII && bad.value >= 0x20 && bad.value < 0x7F ? "'\(bad)'" : "U+\(String(bad.value, radix: 16, uppercase: true))"
            return "the topic '\(TerminalText.escaped(topic))' has \(shown) in it: \(rule)"
        }
        if utf8.count > maximumLength {
            return "the topic '\(topic)' is \(utf8.count) characters long: \(rule)"
        }
        return nil
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": true
        default: false
        }
    }
}
