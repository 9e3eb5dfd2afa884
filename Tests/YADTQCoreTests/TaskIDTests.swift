import Foundation
import Testing
import YADTQCore

@Suite("Task ids")
struct TaskIDTests {
    @Test("random ids are lowercase version-4 UUIDs")
    func format() throws {
        let ids = TaskID.random(count: 1000)
        #expect(ids.count == 1000)
        for id in ids {
            let parsed = try #require(UUID(uuidString: id), "\(id) is not a UUID")
            #expect(parsed.uuidString.lowercased() == id)
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4, "\(id): version nibble")
            #expect(bytes[8] >> 6 == 0b10, "\(id): variant bits")
        }
    }

    @Test("ids do not repeat, within a batch or across batches")
    func unique() {
        let ids = TaskID.random(count: 50_000) + TaskID.random(count: 50_000)
        #expect(Set(ids).count == ids.count)
        #expect(TaskID.random(count: 0).isEmpty)
    }

    @Test("naming declarations keeps the ids they give and gives the others new, distinct ones")
    func named() {
        let declarations = [
            TaskDeclaration(type: "add"), TaskDeclaration(id: "mine", type: "add"), TaskDeclaration(type: "mul", args: [2]),
        ]
        let named = TaskID.named(declarations)
        #expect(named[1] == declarations[1])
        #expect(named[0].id != nil && named[2].id != nil && named[0].id != named[2].id)
        #expect(named.map(\.type) == ["add", "add", "mul"])
        #expect(named[2].args == [2])
    }

    @Test("every hex digit occurs in every free position")
    func spread() {
        // A stuck or mis-shifted byte would leave a position with one digit only.
        let ids = TaskID.random(count: 2000).map { Array($0.utf8) }
        for position in 0..<36 where ![8, 13, 14, 18, 19, 23].contains(position) {
            #expect(Set(ids.map { $0[position] }).count == 16, "position \(position)")
        }
    }
}

@Suite("Task ids that start with '-'")
struct DashedTaskIDTests {
    static let options: Set<String> = ["--json", "--redis", "-h", "--help"]

    func message(_ arguments: [String], command: String = "yadtq-ctl status") -> String? {
        DashedTaskID.message(command: command, arguments: arguments, options: Self.options, takingValue: ["--redis"])
    }

    @Test("an argument before '--' that starts with '-' and is no option: the message says so and writes the command line with '--'")
    func explains() {
        #expect(
            message(["-x"])
                == "'-x' is not an option of yadtq-ctl status; a task id that starts with '-' goes after '--': yadtq-ctl status -- -x")
        #expect(message(["a", "-x", "--json"])?.hasSuffix(": yadtq-ctl status a --json -- -x") == true)
        #expect(message(["-x", "--", "-y"])?.hasSuffix(": yadtq-ctl status -- -x -y") == true, "after the '--' already there")
        #expect(
            message(["--json", "-x", "-y"])
                == "'-x' and '-y' are not options of yadtq-ctl status; task ids that start with '-' go after '--': yadtq-ctl status --json -- -x -y")
        let both = message(["--jsn", "-x", "a", "-y", "--", "-z"])
        #expect(
            both == "'--jsn', '-x' and '-y' are not options of yadtq-ctl status (did you mean '--json' for '--jsn'?); "
                + "task ids that start with '-' go after '--': yadtq-ctl status a -- --jsn -x -y -z", "\(both ?? "")")
        #expect(message(["--x=1"])?.hasSuffix(": yadtq-ctl status -- --x=1") == true)
        #expect(message(["--redis", "-r", "-x"])?.hasPrefix("'-x' is not") == true, "an option's value is no option")
        #expect(message(["--redis=r", "-x"])?.hasSuffix(": yadtq-ctl status --redis=r -- -x") == true)
        let typo = message(["--jsn", "t1"])
        #expect(typo?.hasPrefix("'--jsn' is not an option of yadtq-ctl status (did you mean '--json'?); ") == true, "\(typo ?? "")")
        #expect(typo?.hasSuffix(": yadtq-ctl status t1 -- --jsn") == true, "\(typo ?? "")")
        #expect(message(["-x", "it's a"])?.hasSuffix(#": yadtq-ctl status 'it'\''s a' -- -x"#) == true, "quoted for a shell")
    }

    @Test("no message without such an argument before '--', or when it cannot be a task id: the parser's stands")
    func leavesOthers() {
        #expect(message(["--", "-x"]) == nil)
        #expect(message(["--json", "a", "-h"]) == nil)
        #expect(message(["--redis"]) == nil, "a missing value is the parser's to say")
        #expect(message(["-", "a"]) == nil)
        #expect(message(["-x y"]) == nil, "a space: not an id")
        #expect(message(["-x", "-y z"]) == nil, "one of them cannot be an id")
        #expect(message(["-" + String(repeating: "x", count: TaskDeclaration.maximumIDLength)]) == nil, "too long for an id")
    }
}
