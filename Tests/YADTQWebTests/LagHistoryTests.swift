import Testing
import YADTQWeb

@Suite("Lag history")
struct LagHistoryTests {
    @Test("one sample per 5 s, the latest reading wins within that, at most ten minutes kept")
    func samples() {
        var history = LagHistory()
        history.record(total: 10, at: 1_000)
        history.record(total: 12, at: 3_000)
        #expect(history.samples == [.init(at: 1_000, total: 12)], "a reading 2 s later replaces the sample")
        history.record(total: 7, at: 6_000)
        #expect(history.samples.map(\.total) == [12, 7])
        for index in 0..<500 { history.record(total: Int64(index), at: 10_000 + Int64(index) * 5_000) }
        #expect(history.samples.count == LagHistory.capacity)
        #expect(history.samples.last?.total == 499)
        #expect(history.samples.first?.total == Int64(500 - LagHistory.capacity))
    }
}
