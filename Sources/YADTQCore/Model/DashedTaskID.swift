import Foundation

/// A task id may start with `-` (``TaskDeclaration/isValidID(_:)``), but a command line parser
/// reads such an argument as an option: `yadtq-ctl status -x` is refused for an unknown option,
/// or for naming no id. Ids that start with `-` go after `--` (`yadtq-ctl status -- -x`); this
/// message says so.
public enum DashedTaskID {
    /// The message for a command line of `command` (`yadtq-ctl status`) that the parser refused,
    /// `arguments` being those after the command, `options` the option names the command knows
    /// (`--json`, `-h`) and `takingValue` those of them followed by a value (`--redis`): it names
    /// every argument before `--` that starts with `-` and is no option, with the option meant
    /// for each that is a near miss (`--jsn`), and writes the command line with them after `--`.
    /// `nil` when there is no such argument or one of them cannot be a task id: then the
    /// parser's own message stands.
    public static func message(
        command: String, arguments: [String], options: Set<String>, takingValue: Set<String>
    ) -> String? {
        var index = 0
        var unknown: [Int] = []
        while index < arguments.count, arguments[index] != "--" {
            let argument = arguments[index]
            let name = String(argument.prefix { $0 != "=" })
            if options.contains(name) {
                // An option's value is no option, whatever it starts with.
                if takingValue.contains(name) && name == argument { index += 1 }
            } else if argument.hasPrefix("-") && argument != "-" {
                unknown.append(index)
            }
            index += 1
        }
        let ids = unknown.map { arguments[$0] }
        guard !ids.isEmpty, ids.allSatisfy(TaskDeclaration.isValidID) else { return nil }
        var corrected = arguments.enumerated().filter { !unknown.contains($0.offset) }.map(\.element)
        if let terminator = corrected.firstIndex(of: "--") {
            corrected.insert(contentsOf: ids, at: terminator + 1)
        } else {
            corrected += ["--"] + ids
        }
        let guesses = ids.compactMap { id in meant(by: id, among: options).map { (id: id, option: $0) } }
        let commandLine = ([command] + corrected.map(shellQuoted)).joined(separator: " ")
        guard ids.count > 1 else {
            let guess = guesses.first.map { " (did you mean '\($0.option)'?)" } ?? ""
            return "'\(ids[0])' is not an option of \(command)\(guess); a task id that starts with '-' goes after '--': "
                + commandLine
        }
        let named = ids.map { "'\($0)'" }
        let guess =
            guesses.isEmpty
            ? "" : " (did you mean " + guesses.map { "'\($0.option)' for '\($0.id)'" }.joined(separator: ", ") + "?)"
        return "\(named.dropLast().joined(separator: ", ")) and \(named.last!) are not options of \(command)\(guess); "
            + "task ids that start with '-' go after '--': " + commandLine
    }

    /// The long option `argument` is a near miss of, if any (`--jsn`: `--json`).
    private static func meant(by argument: String, among options: Set<String>) -> String? {
        let name = String(argument.prefix { $0 != "=" })
        return options.filter { $0.hasPrefix("--") }
            .compactMap { option in Spelling.distance(name, option, atMost: 2).map { (option: option, distance: $0) } }
            .min { ($0.distance, $0.option) < ($1.distance, $1.option) }?.option
    }

    /// `argument` as a POSIX shell reads it back: in single quotes unless it holds only ASCII
    /// letters, digits and `-_./=:,@%+`; control characters escaped for the terminal.
    private static func shellQuoted(_ argument: String) -> String {
        let plain =
            !argument.isEmpty
            && argument.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII
                    && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                        || "-_./=:,@%+".unicodeScalars.contains(scalar))
            }
        guard !plain else { return argument }
        return TerminalText.escaped("'" + argument.replacingOccurrences(of: "'", with: #"'\''"#) + "'")
    }
}
