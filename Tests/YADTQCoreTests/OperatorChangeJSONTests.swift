import Testing
import YADTQCore

/// The one JSON form of an operator's change, which `yadtq-ctl --json` and the web API share.
@Suite("Operator change JSON")
struct OperatorChangeJSONTests {
    @Test("each change gives its status, whether it changed, and what changed or why not")
    func entries() {
        let expected: [(TaskStore.OperatorChange, JSONValue)] = [
            (.cancelled(from: .scheduled),
             ["id": "t", "status": "CANCELLED", "changed": true, "change": "cancelled", "from": "SCHEDULED"]),
            (.cancelRequested, ["id": "t", "status": "PROCESSING", "changed": true, "change": "cancel_requested"]),
            (.requeued, ["id": "t", "status": "QUEUED", "changed": true, "change": "requeued"]),
            (.publishFailed("broker down"), ["id": "t", "status": "FAILED", "changed": false, "error": "broker down"]),
            (.missing, ["id": "t", "status": nil, "changed": false, "error": "no task with id 't'"]),
            (.unchanged(.success),
             ["id": "t", "status": "SUCCESS", "changed": false, "error": "a SUCCESS task cannot be changed this way"]),
        ]
        for (change, entry) in expected {
            #expect(change.json(id: "t") == entry, "\(change)")
        }
    }

    @Test func aPurgedTaskKeepsTheStatusItHad() {
        #expect(
            TaskStore.OperatorChange.deletedJSON(id: "t", status: .failed)
                == ["id": "t", "status": "FAILED", "changed": true, "change": "deleted"])
    }
}
