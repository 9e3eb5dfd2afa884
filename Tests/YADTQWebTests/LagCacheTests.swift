import Testing
import YADTQCore
import YADTQWeb

/// When the web server asks the broker for the lag again, and what requests get meanwhile.
@Suite("Lag cache")
struct LagCacheTests {
    private let lag = [PartitionLag(topic: "t", partition: 0, committed: 5, start: 0, end: 8)]

    @Test("the first request reads; requests during the read wait for it instead of reading again")
    func sharesTheReadInFlight() {
        var cache = LagCache()
        let decisions = [cache.request(at: 0), cache.request(at: 10), cache.request(at: 5_000)]
        #expect(decisions == [.read, .wait, .wait], "a slow read is still shared, however long it takes")
        cache.finished(lag, at: 5_100)
        #expect(cache.fallback(at: 5_100) == lag)
    }

    @Test("a read started under a second ago answers from the cache, done or failed; later ones read again")
    func readsAtMostOncePerSecond() {
        var cache = LagCache()
        let first = cache.request(at: 0)
        cache.finished(lag, at: 200)
        let soon = [cache.request(at: 999), cache.request(at: 1_000)]
        cache.finished(nil, at: 1_100)
        let afterFailure = [cache.request(at: 1_500), cache.request(at: 2_000)]
        #expect(first == .read)
        #expect(soon == [.answer(lag), .read])
        #expect(afterFailure == [.answer(lag), .read], "a failed read does not ask the broker again at once")
    }

    @Test("a request not answered by the read in time gets the last lag if it is under a minute old, else none")
    func fallsBackToARecentReading() {
        var cache = LagCache()
        #expect(cache.fallback(at: 0) == nil, "nothing read yet")
        _ = cache.request(at: 0)
        cache.finished(lag, at: 100)
        _ = cache.request(at: 30_000)
        #expect(cache.fallback(at: 30_000) == lag, "the broker is slow: the reading of 30 s ago")
        cache.finished(nil, at: 32_000)
        #expect(cache.fallback(at: 100 + LagCache.maximumAge - 1) == lag)
        #expect(cache.fallback(at: 100 + LagCache.maximumAge) == nil, "too old to show")
    }
}
