import Testing
import YADTQCore

/// The login form's limit on wrong tokens, server-wide.
@Suite("Login throttle")
struct LoginThrottleTests {
    /// The decision for each sign-in at `times` (seconds), each one a wrong token when checked.
    private static func wrongTokens(at times: [Double], into throttle: inout LoginThrottle) -> [LoginThrottle.Decision] {
        times.map { time in
            let now = Int64(time * 1000)
            let decision = throttle.attempt(at: now)
            if decision == .check { _ = throttle.failed(at: now) }
            return decision
        }
    }

    @Test("ten wrong tokens within a minute close the form, until the first of them is a minute old")
    func closesAfterTenFailures() {
        var throttle = LoginThrottle()
        let first = Self.wrongTokens(at: (0..<9).map(Double.init), into: &throttle)
        #expect(first == Array(repeating: .check, count: 9))
        let tenth = throttle.attempt(at: 9_000)
        let closes = throttle.failed(at: 9_000)
        #expect(tenth == .check && closes, "the tenth failure closes the form")
        let refused = Self.wrongTokens(at: [9.5, 59.999], into: &throttle)
        #expect(refused == [.refuse(retryAfter: 51), .refuse(retryAfter: 1)])
        let again = Self.wrongTokens(at: [60, 60.1, 61], into: &throttle)
        #expect(
            again == [.check, .refuse(retryAfter: 1), .check],
            "the first failure is a minute old: one more try, which fails, until the second is a minute old")
    }

    @Test("refused attempts do not count, and failures spread out never close the form")
    func refusalsDoNotCount() {
        var spread = LoginThrottle()
        let decisions = Self.wrongTokens(at: (0..<100).map { Double($0) * 7 }, into: &spread)
        #expect(decisions.allSatisfy { $0 == .check }, "one failure every 7 s: at most 9 in a minute")

        var closed = LoginThrottle()
        _ = Self.wrongTokens(at: Array(repeating: 0, count: LoginThrottle.maximumFailures), into: &closed)
        let hammering = Self.wrongTokens(at: Array(repeating: 30, count: 1_000), into: &closed)
        #expect(hammering.allSatisfy { $0 == .refuse(retryAfter: 30) })
        let later = closed.attempt(at: 60_000)
        #expect(later == .check, "a thousand refused attempts did not keep it closed")
    }
}
