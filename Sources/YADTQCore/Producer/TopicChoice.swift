/// The topic a producer publishes to, chosen so that tasks meet a worker: the topic given
/// (`--topic`, `YADTQ_TOPIC`) or else, when every running worker of the group consumes one
/// topic, that one. Whatever the choice, a producer whose topic no running worker consumes
/// says so, so tasks never wait QUEUED without a word.
public struct TopicChoice: Sendable, Equatable {
    public var topic: String
    /// Says the topic was taken from the workers.
    public var notice: String?
    /// Says no running worker of the group consumes the topic.
    public var warning: String?

    /// A worker whose heartbeat is older than this is not counted as running.
    public static let liveWithin: Int64 = 30_000

    /// - Parameters:
    ///   - explicit: the topic the user named, if any.
    ///   - fallback: the default topic.
    ///   - workers: the heartbeats in the namespace.
    public init(explicit: String?, fallback: String, group: String, workers: [TaskStore.WorkerHeartbeat], now: Int64) {
        let consumers = Self.consumers(group: group, workers: workers, now: now)
        func listing() -> String {
            consumers.keys.sorted().map { "\($0) (\(consumers[$0]!.sorted().joined(separator: ", ")))" }
                .joined(separator: "; ")
        }
        if let explicit {
            topic = explicit
        } else if consumers.count == 1, let only = consumers.first {
            topic = only.key
            if only.key != fallback {
                notice = "publishing to topic \(only.key), the topic of the running workers of group \(group): "
                    + "\(only.value.sorted().joined(separator: ", ")) (--topic or YADTQ_TOPIC chooses another)"
            }
            return
        } else {
            topic = fallback
        }
        guard consumers[topic] == nil else { return }
        if consumers.isEmpty {
            warning = "no worker of group \(group) is running (none has sent a heartbeat in the last 30 s): "
                + "tasks wait QUEUED on topic \(topic) until one starts, e.g. yadtq-worker w1 \(topic)"
        } else {
            warning = "no running worker of group \(group) consumes topic \(topic): tasks wait QUEUED there. "
                + "Running workers consume: \(listing()). Start one with yadtq-worker w1 \(topic), or publish with --topic"
        }
    }

    /// The running workers of `group` (a heartbeat within ``liveWithin``, not stopped), by the
    /// topic each consumes.
    static func consumers(group: String, workers: [TaskStore.WorkerHeartbeat], now: Int64) -> [String: [String]] {
        var consumers: [String: [String]] = [:]
        for worker in workers {
            guard let beat = worker.heartbeat, let topic = beat.topic, beat.state != .stopped,
                beat.clock(at: now, redisNow: worker.redisNow) - beat.lastHeartbeat <= liveWithin,
                (beat.group ?? group) == group
            else { continue }
            consumers[topic, default: []].append(worker.name)
        }
        return consumers
    }
}
