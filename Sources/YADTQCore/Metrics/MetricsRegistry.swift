import CoreMetrics
import Foundation
import Prometheus

/// One process's metrics: swift-metrics types backed by a Prometheus registry of their
/// own (no global bootstrap), rendered in the Prometheus text format by ``exposition()``.
public final class MetricsRegistry: Sendable {
    private let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory

    /// - Parameters:
    ///   - durationBuckets: histogram buckets of a `Timer`, by metric name.
    ///   - valueBuckets: histogram buckets of an aggregating `Recorder`, by metric name.
    public init(durationBuckets: [String: [Duration]] = [:], valueBuckets: [String: [Double]] = [:]) {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = durationBuckets
        factory.valueHistogramBuckets = valueBuckets
        self.factory = factory
    }

    /// Everything registered so far, in the Prometheus text exposition format (0.0.4).
    public func exposition() -> String { registry.emitToString() }

    func counter(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: dimensions, factory: factory)
    }

    func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: name, dimensions: dimensions, factory: factory)
    }

    func histogram(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Recorder {
        CoreMetrics.Recorder(label: name, dimensions: dimensions, aggregate: true, factory: factory)
    }

    func timer(_ name: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: name, dimensions: dimensions, factory: factory)
    }
}

/// A family of gauges of one name whose label values come and go (partitions, statuses):
/// ``set(_:)`` gives each current label set its value and removes the ones no longer
/// present, so a scrape never shows a stale series.
final class GaugeFamily: @unchecked Sendable {
    // @unchecked Sendable: `gauges` is read and written only while holding `lock`.
    private let lock = NSLock()
    private let registry: MetricsRegistry
    private let name: String
    private var gauges: [[String]: CoreMetrics.Gauge] = [:]
    private let labelNames: [String]

    init(_ registry: MetricsRegistry, _ name: String, labels: [String]) {
        self.registry = registry
        self.name = name
        labelNames = labels
    }

    /// Label values (in the order of `labels`) -> value.
    func set(_ values: [[String]: Double]) {
        lock.withLock {
            for (key, gauge) in gauges where values[key] == nil {
                gauge.destroy()
                gauges[key] = nil
            }
            for (key, value) in values {
                let gauge =
                    gauges[key] ?? registry.gauge(name, Array(zip(labelNames, key)))
                gauges[key] = gauge
                gauge.record(value)
            }
        }
    }
}

/// A counter fed with totals kept elsewhere (Redis's `finished` hashes, the worker's
/// assignment changes): each ``set(_:)`` adds the increase since the last one. A total
/// that went down (its source was reset) resets the counter, as a restarted process would.
final class CounterFromTotal: @unchecked Sendable {
    // @unchecked Sendable: `last` is read and written only while holding `lock`.
    private let lock = NSLock()
    private let counter: CoreMetrics.Counter
    private var last: Int64 = 0

    init(_ counter: CoreMetrics.Counter) { self.counter = counter }

    func set(_ total: Int64) {
        lock.withLock {
            if total < last {
                counter.reset()
                last = 0
            }
            if total > last { counter.increment(by: total - last) }
            last = total
        }
    }
}
