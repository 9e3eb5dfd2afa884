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
        let (counts, finished, workers, oldest) = try await backend.read { store in
            (
                try store.counts(), try store.finishedCounts(),
                try store.workerHeartbeats().map { WorkerView($0, now: now) }, try store.oldestQueuedAt()
            )
        }
        let lag = await backend.lag.read()
        let observation = QueueObservation(
            counts: counts, finished: finished,
            workers: Dictionary(grouping: WorkerView.listed(workers, now: now), by: \.verdict.rawValue).mapValues(\.count),
            lag: lag, oldestQueuedSeconds: oldest.map { Double(max(0, now - $0)) / 1000 } ?? 0)
        let text = backend.queueMetrics.exposition(of: observation)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// The consumer group's lag on the web server's topic, read on a queue of its own with a
/// reader made on first use (so the pages work while the broker is still starting).
final class LagSource: @unchecked Sendable {
    // @unchecked Sendable: `reader` is read and written only on `queue`, a serial queue.
    private let queue = DispatchQueue(label: "yadtq.web.lag")
    private var reader: KafkaLagReader?
    private let settings: YADTQSettings
    private let topic: String
    private let logger: Logger

    init(settings: YADTQSettings, topic: String, logger: Logger) {
        self.settings = settings
        self.topic = topic
        self.logger = logger
    }

    /// The lag per partition, or `nil` (logged) when the broker cannot tell.
    func read() async -> [PartitionLag]? {
        try? await WebBackend.perform(on: queue) { [self] in
            do {
                if reader == nil { reader = try KafkaLagReader(settings: settings, timeout: .seconds(2)) }
                return try reader!.lag(topic: topic)
            } catch {
                logger.warning("consumer lag not read: \(error)")
                throw error
            }
        }
    }
}
