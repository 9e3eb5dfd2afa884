import Testing
import YADTQCore

/// The rules of an operator's bulk retry (``RetryFilter``), as yadtq-ctl and the web API share them.
@Suite("Retry filter")
struct RetryFilterTests {
    @Test("reads status, type and since from JSON; refuses what it cannot apply, saying why")
    func json() throws {
        let full = try RetryFilter(json: ["status": "cancelled", "type": "div", "since": "2h"])
        #expect(full == (try RetryFilter(status: .cancelled, type: "div", since: .seconds(7200))))
        #expect(try RetryFilter(json: ["status": "FAILED", "type": nil, "since": 90]).since == .seconds(90))
        #expect(try RetryFilter(json: ["status": "FAILED"]) == (try RetryFilter()))
        let refused: [(JSONValue, String)] = [
            (["status": "SUCCESS"], "only FAILED or CANCELLED tasks can be retried, not SUCCESS ones"),
            (["status": "DONE"], "unknown status 'DONE': retry FAILED or CANCELLED tasks"),
            ([:], "name the status to retry"),
            (["status": "FAILED", "since": "soon"], "since 'soon' is not a duration"),
            (["status": "FAILED", "since": 0], "since must be a positive duration"),
            (["status": "FAILED", "since": -5], "since must be a positive duration"),
            (["status": "FAILED", "since": true], "since must be a positive duration, such as \"1h\" or a number of seconds below 10^12, not true"),
            // Counted in milliseconds, 10^16 s would overflow: an integer has the bound of every other form.
            (["status": "FAILED", "since": 10_000_000_000_000_000], "since must be a positive duration, such as \"1h\" or a number of seconds below 10^12, not 10000000000000000"),
            (["status": "FAILED", "since": 1e16], "since must be a positive duration, such as \"1h\" or a number of seconds below 10^12"),
            (["status": "FAILED", "type": 3], "type must be a task type name as a string, not 3"),
            (["status": "FAILED", "type": "a b"], "'a b' is not a task type name"),
            (["status": "FAILED", "statuses": ["FAILED"]], "unknown filter field 'statuses'"),
            (["FAILED"], "send the filter as a JSON object"),
        ]
        for (value, message) in refused {
            #expect(throws: RetryFilter.Invalid.self, "\(value)") { try RetryFilter(json: value) }
            do {
                _ = try RetryFilter(json: value)
            } catch {
                #expect(error.description.hasPrefix(message), "\(value): \(error.description)")
            }
        }
    }

    @Test("takes tasks of its status and type that finished within since")
    func matches() throws {
        func record(_ status: String, type: String = "div", finishedAt: Int64 = 10_000) -> TaskRecord {
            TaskRecord(outsideView: ["id": "t", "status": .string(status), "type": .string(type), "finished_at": .int(finishedAt)])!
        }
        let filter = try RetryFilter(status: .failed, type: "div", since: .seconds(5))
        #expect(filter.matches(record("FAILED"), now: 15_000))
        #expect(!filter.matches(record("FAILED"), now: 15_001), "finished more than 5 s ago")
        #expect(!filter.matches(record("CANCELLED"), now: 15_000))
        #expect(!filter.matches(record("FAILED", type: "add"), now: 15_000))
        #expect(try RetryFilter(status: .cancelled).matches(record("CANCELLED", type: "add", finishedAt: 0), now: 1 << 40))
    }

    @Test("a bulk retry's pacing starts the first chunk whatever the time, then a chunk only while twice the longest so far fits before the deadline")
    func pacing() {
        let start = ContinuousClock.now
        var pacing = BulkRetryPacing(deadline: start + .seconds(3))
        #expect(pacing.startsChunk(at: start + .seconds(5)), "the first chunk always starts")
        pacing.chunkEnded(taking: .milliseconds(400))
        #expect(pacing.startsChunk(at: start + .milliseconds(2_200)))
        #expect(!pacing.startsChunk(at: start + .milliseconds(2_201)))
        pacing.chunkEnded(taking: .milliseconds(100))
        #expect(!pacing.startsChunk(at: start + .milliseconds(2_201)), "the longest chunk counts, not the last")
        pacing.chunkEnded(taking: .milliseconds(900))
        #expect(pacing.startsChunk(at: start + .milliseconds(1_200)))
        #expect(!pacing.startsChunk(at: start + .milliseconds(1_201)))
    }
}
