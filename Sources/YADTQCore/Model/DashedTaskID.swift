import Foundation

/// A task id may start with `-` (``TaskDeclaration/isValidID(_:)``), but a command line parser
/// reads such an argument as an option: `yadtq-ctl status -x` is refused for an unknown option,
/// or for naming no id. Ids that start with `-` go after `--` (`yadtq-ctl status -- -x`); this
/// message says so.
public enum DashedTaskID {
    /// The message for a command line of `command` (`yadtq-ctl status`) that the parser refused,
    /// `arguments` being those after the command, `options` the option names the command knows
    /// (`--json`, `-h`) and `takingValue` those of them followed by a value (`--redis`): it names
    /// the first argument before `--` that starts with `-` and is no option, with the option
    /// meant when it is a near miss (`--jsn`), and writes the command line with it after `--`.
    /// `nil` when there is no such argument or it cannot be a task id: then the parser's own
    /// message stands.
    public static func message(
        command: String, arguments: [String], options: Set<String>, takingValue: Set<String>
    ) -> String? {
        var index = 0
        var unknown: Int?
        while unknown == nil, index < arguments.count, arguments[index] != "--" {
            let argument = arguments[index]
            let name = String(argument.prefix { $0 != "=" })
            if options.contains(name) {
                // An option's value is no option, whatever it starts with.
                if takingValue.contains(name) && name == argument { index += 1 }
            } else if argument.hasPrefix("-") && argument != "-" {
                unknown = index
            }
            index += 1
        }
        guard let unknown, TaskDeclaration.isValidID(arguments[unknown]) else { return nil }
        let id = arguments[unknown]
        var corrected = arguments
        corrected.remove(at: unknown)
        if let terminator = corrected.firstIndex(of: "--") {
            corrected.insert(id, at: terminator + 1)
        } else {
            corrected += ["--", id]
        }
        let name = String(id.prefix { $0 != "=" })
        let meant = options.filter { $0.hasPrefix("--") }
            .compactMap { option in Spelling.distance(name, option, atMost: 2).map { (option: option, distance: $0) } }
            .min { ($0.distance, $0.option) < ($1.distance, $1.option) }
        let guess = meant.map { " (did you mean '\($0.option)'?)" } ?? ""
        return "'\(id)' is not an option of \(command)\(guess); a task id that starts with '-' goes after '--': "
            + ([command] + corrected.map(shellQuoted)).joined(separator: " ")
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
