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
/// reader made on first use (so the pages work while the broker is still starting).
final class LagSource: @unchecked Sendable {
    // @unchecked Sendable: `reader` and `samples` are read and written only on `queue`, a serial queue.
    private let queue = DispatchQueue(label: "yadtq.web.lag")
    private var reader: KafkaLagReader?
    /// The total lag this server has read, oldest first: at most one sample per
    /// ``LagHistory/spacing``, for ``LagHistory/capacity`` samples (the dashboard's lag chart).
    private var samples = LagHistory()
    private let settings: YADTQSettings
    private let topic: String
    private let logger: Logger

    init(settings: YADTQSettings, topic: String, logger: Logger) {
        self.settings = settings
        self.topic = topic
        self.logger = logger
    }

    /// The total lag read over the last minutes, oldest first.
    func history() async -> LagHistory {
        (try? await queue.perform { [self] in samples }) ?? LagHistory()
    }

    /// The lag per partition, or `nil` (logged) when the broker cannot tell.
    func read() async -> [PartitionLag]? {
        try? await queue.perform { [self] in
            do {
                if reader == nil { reader = try KafkaLagReader(settings: settings, timeout: .seconds(2)) }
                let lag = try reader!.lag(topic: topic)
                samples.record(total: lag.reduce(0) { $0 + $1.lag }, at: currentEpochMilliseconds())
                return lag
            } catch {
                logger.warning("consumer lag not read: \(error)")
                throw error
            }
        }
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
