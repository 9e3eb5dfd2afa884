import Dispatch

extension DispatchQueue {
    /// Runs blocking work (a Redis round trip, a publish, a Lua call) on this queue and
    /// resumes the calling task with its result, so the work never holds a thread of Swift's
    /// cooperative pool.
    public func perform<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            self.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
