/// When a failed attempt is tried again, and after how long.
public struct RetryPolicy: Sendable, Equatable {
    /// Delay before the second attempt; doubled for each attempt after it.
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(2)) {
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    public enum Decision: Sendable, Equatable {
        case retry(after: Duration)
        case fail
    }

    /// A permanent failure (unknown task type, a message that is not a task) fails at
    /// once; anything else is retried until `attempt` reaches `maxAttempts`.
    public func decide(attempt: Int, maxAttempts: Int, permanent: Bool) -> Decision {
        if permanent || attempt >= maxAttempts { return .fail }
        return .retry(after: delay(afterAttempt: attempt))
    }

    /// `baseDelay * 2^(attempt-1)`, capped at `maxDelay`.
    public func delay(afterAttempt attempt: Int) -> Duration {
        let factor = 1 << min(max(attempt - 1, 0), 20)
        return min(baseDelay * factor, maxDelay)
    }
}
