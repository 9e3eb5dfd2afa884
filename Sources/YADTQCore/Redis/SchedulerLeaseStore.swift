import Logging

/// The scheduler's lease in Redis (`scheduler:<topic>`): the workers of a topic each try to
/// take it, and the one holding it runs the scheduler (see ``Scheduler``). Its holder renews
/// it; when the holder dies the lease expires and another worker takes it.
///
/// - Important: Calls block the calling thread (the scheduler's own).
public final class SchedulerLeaseStore: Sendable {
    private let client: RedisClient
    private let key: String

    /// - Parameter reconnectFor: how long a call keeps trying while Redis is away; kept short,
    ///   so the holder notices in time that it cannot renew.
    public init(settings: YADTQSettings, topic: String, logger: Logger, reconnectFor: Duration = .seconds(1)) {
        client = RedisClient(url: settings.redis, logger: logger, reconnectFor: reconnectFor)
        key = RedisKeys(prefix: settings.keyPrefix, for: settings.redis).schedulerLease(topic: topic)
    }

    /// Takes the lease for `owner` when nobody holds it (`SET NX PX`), or renews it when
    /// `owner` holds it; returns whether `owner` holds it now, for `duration`.
    public func takeOrRenew(owner: String, duration: Duration) throws -> Bool {
        try client.evaluate(
            Self.takeOrRenewScript, keys: [key], arguments: RedisCommand(owner, String(duration.inMilliseconds))
        ).integer == 1
    }

    /// Gives the lease up if `owner` holds it, so another worker takes over at once.
    public func release(owner: String) throws {
        _ = try client.evaluate(Self.releaseScript, keys: [key], arguments: RedisCommand(owner))
    }

    /// Who holds the lease (the holder's owner string), if anyone.
    public func holder() throws -> String? {
        try client.execute(RedisCommand("GET", key), or: "Reading the scheduler lease").text
    }

    /// KEYS: the lease. ARGV: owner, duration in ms. Returns 1 when the owner holds it now.
    private static let takeOrRenewScript = RedisScript(
        name: "scheduler_lease",
        source: """
            local holder = redis.call('GET', KEYS[1])
            if holder == ARGV[1] then
              redis.call('PEXPIRE', KEYS[1], ARGV[2])
              return 1
            end
            if not holder then
              redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
              return 1
            end
            return 0
            """)

    /// KEYS: the lease. ARGV: owner. Deletes the lease only if the owner holds it.
    private static let releaseScript = RedisScript(
        name: "scheduler_release",
        source: """
            if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
            return 0
            """)
}
