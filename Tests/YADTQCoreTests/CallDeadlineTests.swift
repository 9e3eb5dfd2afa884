import Logging
import Testing
import YADTQCore

/// The budget of a web request, counted from its arrival: a call that reaches the front of
/// the store's queue after it fails at once rather than waiting for Redis again.
@Suite("Call deadlines")
struct CallDeadlineTests {
    @Test("a call may start until its budget after arrival has passed, and never after")
    func passes() {
        let arrival = ContinuousClock.now
        let deadline = CallDeadline(budget: .seconds(3), from: arrival)
        #expect(!deadline.hasPassed(at: arrival))
        #expect(!deadline.hasPassed(at: arrival + .milliseconds(2_999)))
        #expect(deadline.hasPassed(at: arrival + .seconds(3)))
        // The third of several requests queued behind a stalled call: 6 s after its arrival.
        #expect(deadline.hasPassed(at: arrival + .seconds(6)))
    }

    @Test("work whose deadline passed while it waited its turn is refused without running, so nothing is sent; one in time runs")
    func expiredWorkNotRun() throws {
        var settings = try YADTQSettings(environment: [:])
        // Nothing listens there: the store never connects, and needs not to.
        settings.redis = try RedisURL(parsing: "redis://127.0.0.1:1/0")
        let store = TaskStore(settings: settings, logger: Logger(label: "test"))
        let expired = CallDeadline(budget: .seconds(3), from: .now - .seconds(4))
        var ran = false
        #expect(throws: CallDeadline.Expired.self) { try store.within(expired) { ran = true } }
        #expect(!ran)
        #expect("\(CallDeadline.Expired())".contains("so it was not sent"))
        try store.within(CallDeadline(budget: .seconds(3), from: .now)) { ran = true }
        #expect(ran)
    }
}
