import Testing
import YADTQCore
import YADTQWeb

/// The error `body` gives as a `POST /api/tasks` body, or `nil` (recording an issue) if it is accepted.
private func bodyError(_ body: String, sourceLocation: SourceLocation = #_sourceLocation) -> WebError? {
    do {
        let declarations = try SubmissionInput.declarations(json: Array(body.utf8))
        Issue.record("\(body) was accepted as \(declarations)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

@Suite("Submission checks")
struct SubmissionCheckTests {
    @Test("a body that repeats a key is refused with the key, not queued with one of its values")
    func repeatedKey() throws {
        let error = try #require(bodyError(#"{"type":"add","type":"mul"}"#))
        #expect(error.status == .badRequest)
        #expect(error.message.contains(#"key "type" appears twice"#), "\(error.message)")
        // A retry filter's body is read by the same parser.
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: #"{"status":"CANCELLED","status":"FAILED"}"#) }
    }

    @Test("an argument beyond 64 bits is refused, naming the task and the argument; floats stay")
    func wideIntegers() throws {
        let one = try #require(bodyError(#"{"type": "add", "args": [99999999999999999999999]}"#))
        #expect(one.status == .badRequest)
        #expect(one.message == "argument 1 is an integer beyond 64 bits: pass it as a string")
        let many = try #require(bodyError(#"[{"type": "add", "args": [1]}, {"type": "add", "args": [1, 99999999999999999999999]}]"#))
        #expect(many.message == "task 2: argument 2 is an integer beyond 64 bits: pass it as a string")
        let kept = try SubmissionInput.declarations(json: Array(#"{"type": "add", "args": [1e23, 0.5]}"#.utf8))
        #expect(kept.first?.args == [.double(1e23), .double(0.5)])
        #expect(throws: WebError.self) {
            try SubmissionInput.declaration(type: "add", arguments: "99999999999999999999999", maxAttempts: "")
        }
    }

    @Test("the form's max attempts follows the rule of a JSON task's max_attempts: +5, 5.0 and 05 are refused")
    func maxAttempts() throws {
        #expect(try SubmissionInput.declaration(type: "add", arguments: "", maxAttempts: " 5 ").maxAttempts == 5)
        #expect(try SubmissionInput.declaration(type: "add", arguments: "", maxAttempts: "").maxAttempts == nil)
        for bad in ["+5", "5.0", "05", "5e0", "\"5\"", "0x5", "1 2", "null"] {
            #expect(throws: WebError.self, "\(bad)") {
                try SubmissionInput.declaration(type: "add", arguments: "", maxAttempts: bad)
            }
        }
    }

    @Test("one rule for a type filter: the listing's ?type=, yadtq-ctl --type and a retry filter")
    func typeFilter() throws {
        #expect(TaskDeclaration.typeFilterProblem("add") == nil)
        #expect(TaskDeclaration.typeFilterProblem("a b") == "'a b' is not a task type name (a plugin file's name without .lua)")
        #expect(throws: RetryFilter.Invalid.self) { try RetryFilter(type: "x y") }
    }
}
