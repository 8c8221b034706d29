import Foundation
import IOASIDStore
import LMDB
import NIOCore
import Metrics
import Prometheus

/// The service's metrics, through swift-metrics with swift-prometheus as the
/// backend, in Prometheus naming (`ioasid_…_total` counters, base units).
///
/// Counters and histograms are updated as requests and commits happen; the
/// store's figures (capacity, quotas, IDs per set, subscribers) are gauges set
/// from one read snapshot at each scrape, so they match `ioasid status` at that moment.
final class ServiceMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let commitDuration: Metrics.Timer
    private let groupSize: Recorder
    /// Gauges labelled by set or subscriber, kept to drop those that went away.
    private let labelled = Locked<[String: Metrics.Gauge]>([:])

    /// Bootstraps swift-metrics with a Prometheus registry (once per process).
    init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        factory.valueHistogramBuckets["ioasid_commit_group_operations"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        MetricsSystem.bootstrap(factory)
        self.registry = registry
        commitDuration = Metrics.Timer(label: "ioasid_commit_duration_seconds")
        groupSize = Recorder(label: "ioasid_commit_group_operations", aggregate: true)
    }

    /// One operation of `kind` (alloc, free, …) was requested.
    func operation(_ kind: String) {
        Counter(label: "ioasid_operations_total", dimensions: [("op", kind)]).increment()
    }

    /// An operation was refused or failed with `code`.
    func failure(_ code: String) {
        Counter(label: "ioasid_errors_total", dimensions: [("code", code)]).increment()
    }

    /// A group commit of `operations` operations took `duration`.
    func commit(operations: Int, duration: Duration) {
        commitDuration.recordNanoseconds(duration.nanoseconds)
        groupSize.record(operations)
    }

    /// Sets the store's gauges from `status` (one snapshot) and renders the exposition text.
    func render(status: StoreStatus, nowMillis: UInt64) -> [UInt8] {
        Metrics.Gauge(label: "ioasid_capacity_ids").record(Int(status.capacity) - 1)
        Metrics.Gauge(label: "ioasid_quota_reserved_ids").record(Int(status.reserved))
        Metrics.Gauge(label: "ioasid_quota_unreserved_ids").record(Int(status.unreserved))
        Metrics.Gauge(label: "ioasid_allocated_ids").record(Int(status.allocated))
        Metrics.Gauge(label: "ioasid_free_pending_ids").record(Int(status.freePending))
        Metrics.Gauge(label: "ioasid_sets").record(status.sets.count)
        Metrics.Gauge(label: "ioasid_last_event_sequence").record(Int(clamping: status.lastSequence))
        var lapsed = 0
        var current: [String: (label: String, dimensions: [(String, String)], value: Double)] = [:]
        func put(_ label: String, _ dimensions: [(String, String)], _ value: Double) {
            let key = label + "|" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
            current[key] = (label, dimensions, value)
        }
        for set in status.sets {
            let dimensions = [("set", "\(set.id.rawValue)")]
            put("ioasid_set_quota_ids", dimensions, Double(set.quota))
            put("ioasid_set_allocated_ids", dimensions, Double(set.allocated))
            put("ioasid_set_free_pending_ids", dimensions, Double(set.freePending))
        }
        for subscriber in status.subscribers {
            let dimensions = [("subscriber", subscriber.name)]
            put("ioasid_subscriber_lag_events", dimensions, Double(subscriber.lag))
            let age = subscriber.oldestUnacknowledged.map { nowMillis > $0 ? Double(nowMillis - $0) / 1000 : 0 } ?? 0
            put("ioasid_subscriber_oldest_unacknowledged_age_seconds", dimensions, age)
            if subscriber.state == .lapsed { lapsed += 1 }
        }
        Metrics.Gauge(label: "ioasid_subscribers").record(status.subscribers.count)
        Metrics.Gauge(label: "ioasid_subscribers_lapsed").record(lapsed)
        labelled.withLock { gauges in
            for (key, gauge) in gauges where current[key] == nil {
                gauge.destroy()
                gauges[key] = nil
            }
            for (key, entry) in current {
                let gauge = gauges[key] ?? Metrics.Gauge(label: entry.label, dimensions: entry.dimensions)
                gauges[key] = gauge
                gauge.record(entry.value)
            }
        }
        return registry.emitToBuffer()
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
