import Foundation
import Hummingbird
import Logging
import YADTQCore

/// `GET /metrics`: the queue, the fleet and the consumer lag in the Prometheus text format,
/// read from Redis and the broker at each scrape.
struct MetricsRoutes {
    let backend: WebBackend

    func register(on router: Router<WebRequestContext>) {
        router.get("/metrics") { _, _ in try await metrics() }
    }

    private func metrics() async throws -> Response {
        let now = currentEpochMilliseconds()
        let (counts, finished, workers, oldest, memory) = try await backend.read { store in
            (
                try store.counts(), try store.finishedCounts(),
                try store.workerHeartbeats().map { WorkerView($0, now: now) }, try store.oldestQueuedAt(),
                try store.memory()
            )
        }
        let lag = await backend.lag.read()
        let observation = QueueObservation(
            counts: counts, finished: finished,
            workers: Dictionary(grouping: WorkerView.listed(workers), by: \.verdict.rawValue).mapValues(\.count),
            lag: lag, oldestQueuedSeconds: oldest.map { Double(max(0, now - $0)) / 1000 } ?? 0, redisMemory: memory)
        let text = backend.queueMetrics.exposition(of: observation)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// The consumer group's lag on the web server's topic, read on a queue of its own with a
/// reader made on first use (so the pages work while the broker is still starting), at most
/// once per ``LagCache/freshFor`` whoever asks, and never waited for longer than
/// ``LagCache/answerWithin`` (see ``LagCache``): a frozen or refusing broker cannot make
/// `/metrics`, the dashboard or `/api/stats` wait its 2 s timeout per request.
final class LagSource: @unchecked Sendable {
    // @unchecked Sendable: `reader` is read and written only on `queue`, a serial queue;
    // `cache`, `samples` and `waiters` only while holding `lock`.
    private let queue = DispatchQueue(label: "yadtq.web.lag")
    private var reader: KafkaLagReader?
    private let lock = NSLock()
    private var cache = LagCache()
    /// The total lag this server has read, oldest first: at most one sample per
    /// ``LagHistory/spacing``, for ``LagHistory/capacity`` samples (the dashboard's lag chart).
    private var samples = LagHistory()
    /// The requests waiting for the read in flight, each answered once: by the read, or by
    /// its own timer.
    private var waiters: [UInt64: CheckedContinuation<[PartitionLag]?, Never>] = [:]
    private var nextWaiter: UInt64 = 0
    private let settings: YADTQSettings
    private let topic: String
    private let logger: Logger

    init(settings: YADTQSettings, topic: String, logger: Logger) {
        self.settings = settings
        self.topic = topic
        self.logger = logger
    }

    /// The total lag read over the last minutes, oldest first.
    func history() -> LagHistory {
        lock.withLock { samples }
    }

    /// The lag per partition, or `nil` when the broker cannot tell (logged) and no recent
    /// reading is cached.
    func read() async -> [PartitionLag]? {
        await withCheckedContinuation { continuation in
            let (decision, waiter): (LagCache.Decision, UInt64) = lock.withLock {
                let decision = cache.request(at: currentEpochMilliseconds())
                if case .answer = decision { return (decision, 0) }
                nextWaiter += 1
                waiters[nextWaiter] = continuation
                return (decision, nextWaiter)
            }
            switch decision {
            case .answer(let lag):
                continuation.resume(returning: lag)
                return
            case .read: queue.async { [self] in finish(readFromBroker()) }
            case .wait: break
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + LagCache.answerWithin.inSeconds) { [self] in
                let late: (CheckedContinuation<[PartitionLag]?, Never>, [PartitionLag]?)? = lock.withLock {
                    waiters.removeValue(forKey: waiter).map { ($0, cache.fallback(at: currentEpochMilliseconds())) }
                }
                if let late { late.0.resume(returning: late.1) }
            }
        }
    }

    /// One read from the broker, on `queue`.
    private func readFromBroker() -> [PartitionLag]? {
        do {
            if reader == nil { reader = try KafkaLagReader(settings: settings, timeout: .seconds(2)) }
            return try reader!.lag(topic: topic)
        } catch {
            logger.warning("consumer lag not read: \(error)")
            return nil
        }
    }

    /// Records a read's outcome and answers every request still waiting for it.
    private func finish(_ lag: [PartitionLag]?) {
        let (answer, waiting) = lock.withLock {
            let now = currentEpochMilliseconds()
            cache.finished(lag, at: now)
            if let lag { samples.record(total: lag.reduce(0) { $0 + $1.lag }, at: now) }
            let waiting = Array(waiters.values)
            waiters = [:]
            return (cache.fallback(at: now), waiting)
        }
        for continuation in waiting { continuation.resume(returning: answer) }
    }
}

/// Samples of the group's total lag, as this server read them (it reads the lag for the
/// dashboard and for `/metrics`): kept in memory, so a restarted server starts a new chart.
public struct LagHistory: Sendable, Equatable {
    /// One reading: milliseconds since the epoch, and the lag summed over the partitions.
    public struct Sample: Sendable, Equatable {
        public var at: Int64
        public var total: Int64

        public init(at: Int64, total: Int64) {
            self.at = at
            self.total = total
        }
    }

    /// Samples kept: ten minutes at one per ``spacing``.
    public static let capacity = 120
    /// Readings closer together than this replace the last sample instead of adding one.
    public static let spacing: Int64 = 5_000

    public private(set) var samples: [Sample] = []

    public init() {}

    public mutating func record(total: Int64, at now: Int64) {
        if let last = samples.last, now - last.at < Self.spacing {
            samples[samples.count - 1].total = total
            return
        }
        samples.append(Sample(at: now, total: total))
        if samples.count > Self.capacity { samples.removeFirst(samples.count - Self.capacity) }
    }
}
