import Dispatch
import Testing
import YADTQCore

/// Blocking work handed to a queue from async code (``DispatchQueue/perform(_:)``).
@Suite("Dispatch queue: perform")
struct DispatchQueuePerformTests {
    struct Refused: Error, Equatable {}

    @Test func theWorkRunsOnTheQueueAndItsResultComesBack() async throws {
        let queue = DispatchQueue(label: "yadtq.test.perform")
        let result = try await queue.perform {
            dispatchPrecondition(condition: .onQueue(queue))
            return 42
        }
        #expect(result == 42)
    }

    @Test func anErrorComesBackAsTheCallersError() async {
        await #expect(throws: Refused()) {
            try await DispatchQueue(label: "yadtq.test.perform").perform { () throws -> Int in throw Refused() }
        }
    }
}
