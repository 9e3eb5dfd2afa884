import YADTQCore

/// The benchmark's tasks. Task `i` is the line `add a b` with operands computed from `i`
/// alone, so the expected result is known here, independently of anything the pipeline
/// (parser, Lua, JSON, Redis) returns.
struct Workload: Sendable {
    /// How many tasks the run publishes.
    let count: Int

    /// ``count`` without `--tasks` or `--rate`.
    static let defaultCount = 200_000

    /// The operands of task `index`: ever-growing and of mixed sign, so a result taken
    /// from the wrong task or truncated anywhere shows up as a mismatch.
    func operands(_ index: Int) -> (Int64, Int64) {
        (Int64(index), Int64((index &* 7919) % 100_003) - 50_000)
    }

    /// Task `index` as a task-file line, the form `yadtq-run` reads.
    func line(_ index: Int) -> String {
        let (a, b) = operands(index)
        return "add \(a) \(b)"
    }

    /// The result task `index` must end with.
    func expectedResult(_ index: Int) -> JSONValue {
        let (a, b) = operands(index)
        return .int(a + b)
    }

    /// Task `index` read through the task-file parser, as `yadtq-run` reads every line.
    func declaration(_ index: Int) throws -> TaskDeclaration {
        guard case .task(let declaration) = try TaskLine.parse(line: line(index)) else {
            throw BenchFailure("the workload line '\(line(index))' is not a task")
        }
        return declaration
    }
}

/// A benchmark that cannot go on or whose check failed, with the reason.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}
