import Testing
import YADTQCore
import YADTQWeb

@Suite("Workers page verdicts")
struct WorkerViewTests {
    let now: Int64 = 1_000_000

    private func document(_ heartbeat: Heartbeat) -> JSONValue { heartbeat.json }

    private func beat(
        age: Int64, state: WorkerState = .idle, taskRunning: Int64? = nil, limit: Int64 = 30_000
    ) -> Heartbeat {
        Heartbeat(
            lastHeartbeat: now - age, state: state, currentTask: taskRunning.map { _ in "t1" },
            taskStartedAt: taskRunning.map { now - $0 }, pid: 1, host: "h", startedAt: 0,
            timeLimitMilliseconds: limit, intervalMilliseconds: 5_000)
    }

    @Test("without a monitor the page applies the monitor's rules: ALIVE, DEAD, STUCK, same thresholds")
    func sameRulesAsTheMonitor() {
        let cases: [(Heartbeat, WorkerVerdict)] = [
            (beat(age: 2_000), .alive),
            (beat(age: 10_001), .dead),
            (beat(age: 1_000, state: .busy, taskRunning: 36_000), .stuck),
            (beat(age: 1_000, state: .busy, taskRunning: 34_000), .alive),
            (beat(age: 1_000, state: .stopped), .dead),
        ]
        for (heartbeat, expected) in cases {
            let view = WorkerView(name: "w", document: document(heartbeat), storedVerdict: nil, now: now)
            #expect(view.verdict == expected, "\(heartbeat)")
            #expect(!view.judgedByMonitor)
        }
    }

    @Test("the page judges a heartbeat Redis stamped by its age on Redis's clock, and shows its times on its worker's")
    func judgedOnRedisClock() {
        // The worker's host is two minutes behind; Redis stored its beat 1 s before it read it.
        var late = beat(age: 120_000, state: .busy, taskRunning: 122_000)
        late.receivedAt = 9_000_000
        let view = WorkerView(name: "w", document: document(late), storedVerdict: nil, now: now, redisNow: 9_001_000)
        #expect(view.verdict == .alive && view.reason.isEmpty, "\(view.reason)")
        #expect(view.clock == late.lastHeartbeat + 1_000)
        let unstamped = WorkerView(
            name: "w", document: document(beat(age: 120_000)), storedVerdict: nil, now: now, redisNow: 9_001_000)
        #expect(unstamped.verdict == .dead && unstamped.clock == now, "no received_at: the hosts' clocks")
    }

    @Test("the monitor's verdict wins when it has judged the worker")
    func monitorVerdict() {
        let view = WorkerView(name: "w", document: document(beat(age: 60_000)), storedVerdict: "STUCK", now: now)
        #expect(view.verdict == .stuck && view.judgedByMonitor)
    }

    @Test("a stopped worker is DEAD, never an invented STOPPED; an unreadable heartbeat is DEAD")
    func noInventedVerdicts() {
        let stopped = WorkerView(name: "w", document: document(beat(age: 0, state: .stopped)), storedVerdict: nil, now: now)
        #expect(stopped.verdict == .dead && stopped.reason == "stopped")
        let garbled = WorkerView(name: "w", document: .string("?"), storedVerdict: nil, now: now)
        #expect(garbled.verdict == .dead)
        #expect(Set(WorkerVerdict.allCases.map(\.rawValue)) == ["ALIVE", "DEAD", "STUCK"])
    }
}

@Suite("Submission input")
struct SubmissionInputTests {
    @Test("the form's task: type, arguments as in a task file, attempts within the one allowed range")
    func formTask() throws {
        let declaration = try SubmissionInput.declaration(type: "add", arguments: "1 2", maxAttempts: "")
        #expect(declaration.type == "add" && declaration.args == [.int(1), .int(2)])
        #expect(declaration.maxAttempts == nil, "left to the publisher, which applies the plugin's default")
        #expect(try SubmissionInput.declaration(type: "add", arguments: "", maxAttempts: "100").maxAttempts == 100)
        for bad in ["0", "101", "x"] {
            #expect(throws: WebError.self) { try SubmissionInput.declaration(type: "add", arguments: "", maxAttempts: bad) }
        }
        #expect(throws: WebError.self) { try SubmissionInput.declaration(type: "../etc", arguments: "", maxAttempts: "") }
        #expect(throws: WebError.self) {
            try SubmissionInput.declaration(type: String(repeating: "a", count: TaskDeclaration.maximumTypeLength + 1), arguments: "", maxAttempts: "")
        }
    }

    @Test("JSON bodies: one task or many; a bad one refuses them all with details")
    func jsonBodies() throws {
        let many = try SubmissionInput.declarations(json: Array(#"[{"type": "add", "args": [1]}, {"type": "mul"}]"#.utf8))
        #expect(many.map(\.type) == ["add", "mul"])
        do {
            _ = try SubmissionInput.declarations(json: Array(#"[{"type": "add"}, {"type": 3}]"#.utf8))
            Issue.record("a bad task was accepted")
        } catch {
            #expect(error.status == .badRequest && error.details.count == 1)
        }
        #expect(throws: WebError.self) { try SubmissionInput.declarations(json: Array("nope".utf8)) }
    }

    @Test("pasted lines go through the task-file parser: a byte order mark is dropped, end is refused")
    func pastedLines() throws {
        let lines = try SubmissionInput.declarations(lines: "\u{FEFF}add 1 2\n# note\nmul 3 4\n")
        #expect(lines.map(\.type) == ["add", "mul"])
        #expect(throws: WebError.self) { try SubmissionInput.declarations(lines: "add 1\nend\n") }
    }

    @Test("types are checked against the plugin folder; max_attempts is not filled in here")
    func resolve() throws {
        let add = PluginInfo(type: "add", file: "add.lua", maxAttempts: 7)
        let catalog = PluginCatalog(plugins: [add])
        let resolved = try SubmissionInput.resolve([TaskDeclaration(type: "add")], with: catalog)
        #expect(resolved[0].maxAttempts == nil)
        #expect(throws: WebError.self) { try SubmissionInput.resolve([TaskDeclaration(type: "div")], with: catalog) }
    }
}
