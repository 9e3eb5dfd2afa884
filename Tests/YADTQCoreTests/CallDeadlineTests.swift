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
}
