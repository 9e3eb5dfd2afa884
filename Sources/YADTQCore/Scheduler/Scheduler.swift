import Foundation
import Logging

/// The scheduler a worker runs unless started with `--no-scheduler`: one per topic is active
/// at a time, the worker holding the Redis lease (``SchedulerLease``, ``SchedulerLeaseStore``).
/// While it holds the lease it
/// - moves SCHEDULED tasks that are due to QUEUED and publishes them (``TaskStore/releaseDue(topic:at:shard:limit:)``);
/// - queues the periodic tasks of the plugins that declare `every` or `cron` (``TickPlanner``);
/// - publishes again, once, QUEUED tasks whose message was lost, and PROCESSING ones when the
///   broker lost its log, told by an end offset going down or below the one kept in Redis
///   (``LostTaskRule``, ``TaskStore/handover(of:)``,
///   ``TaskStore/takeLost(topic:queuedFrom:to:cutoff:includingProcessing:at:shard:cursor:)``).
///
/// Both walk the task shards one by one (``ShardSweep``): a shard whose master fails is left for
/// the next run, and the others go on.
///
/// It runs from the worker's start, whether its topic exists or not. A topic that does not exist
/// is made by the first task published to it (``TaskPublisher/defaultPartitions``, as `yadtq-run`
/// makes it), so periodic tasks need no `yadtq-run`; or made again, with the partitions it had,
/// when the end offsets seen or kept in Redis show the broker lost it (after the whole stack
/// restarted, no `yadtq-run` may come to make it: the lost tasks would wait for ever). A topic
/// never seen is left alone, for `yadtq-run --partitions` to make.
///
/// Two threads of its own, off the task loop and off Swift's cooperative pool (Redis and the
/// broker block): the **scheduler** thread (lease, due tasks, ticks: every 200 ms, so a task
/// is published within a fraction of a second of its time) and the **lost-task** thread
/// (every 2 s; it waits on the broker, which must not hold up due tasks).
public final class Scheduler: @unchecked Sendable {
    // @unchecked Sendable: `lease`, `madeClients` and `copiesRefused` are guarded by `lock`; `planner`,
    // `leaseProblems` and `tickProblems` are used by the scheduler thread only, `lostRule`,
    // `wasActiveForLost`, `awaitsHandover` and `lostProblems` by the lost-task thread only; everything else is
    // immutable or thread-safe (the stores, the publisher, the lag reader, the registry).
    private let topic: String
    private let owner: String
    private let logger: Logger
    private let leaseStore: SchedulerLeaseStore
    private let registry: PluginRegistry
    /// The Kafka clients the scheduler acts with. Each is a librdkafka client of its own
    /// (threads, buffers, connections to every broker), so they are made when this worker
    /// first holds the lease: the standby workers of a fleet never make them.
    private struct Clients {
        let publisher: TaskPublisher
        let lagReader: KafkaLagReader
    }
    private let makeClients: () throws -> Clients
    private var madeClients: Clients?
    private let lock = NSLock()
    private var lease: SchedulerLease
    /// Tasks whose copy the broker did not take and that still wait for one (see
    /// ``publish(_:_:)``), from either thread: the lost-task thread hands them to `lostRule`,
    /// which offers them again at every check. A due task the broker did not answer for is thus
    /// published again within a check of the broker answering, not when a look finds it lost, 30 s
    /// after its release.
    private var copiesRefused: [String] = []
    private var planner: TickPlanner
    private var lostRule: LostTaskRule
    /// Whether the lost-task thread's last run found this worker the scheduler.
    private var wasActiveForLost = false
    /// Whether this term's lost-task rule still waits for the handover kept in Redis: no check
    /// is made before it is read, as the first check is what compares the end offsets with it.
    private var awaitsHandover = false
    /// Failures that go on (Redis away or full) are reported when they start and every 5 s,
    /// not at every run of a thread that runs five times a second.
    private var leaseProblems = ProblemReport()
    private var tickProblems = ProblemReport()
    private var lostProblems = ProblemReport()
    private let mainThread = PeriodicThread(name: "yadtq-scheduler", interval: .milliseconds(200))
    private let lostThread = PeriodicThread(name: "yadtq-lost", interval: .seconds(2))

    /// - Parameters:
    ///   - worker: the worker's name; the lease's owner is the name with a random suffix, so a
    ///     worker restarted under the same name does not mistake its predecessor's lease for its own.
    public init(
        settings: YADTQSettings, topic: String, worker: String, registry: PluginRegistry,
        logger: Logger, lease: SchedulerLease = SchedulerLease(), lostRule: LostTaskRule = LostTaskRule()
    ) throws {
        self.topic = topic
        owner = worker + "#" + TaskID.random(count: 1)[0].prefix(8)
        self.logger = logger
        self.registry = registry
        self.lease = lease
        self.lostRule = lostRule
        planner = TickPlanner(retention: settings.retention)
        leaseStore = SchedulerLeaseStore(settings: settings, topic: topic, logger: logger)
        makeClients = {
            Clients(
                publisher: try TaskPublisher(
                    settings: settings, topic: topic, partitions: TaskPublisher.defaultPartitions, createsTopicNow: false,
                    clientID: "yadtq-scheduler-\(worker)", logger: logger, plugins: registry, reconnectFor: .seconds(1)),
                lagReader: try KafkaLagReader(settings: settings, timeout: .seconds(2)))
        }
    }

    /// The scheduler's Kafka clients, made on first use (see ``Clients``).
    private func clients() throws -> Clients {
        try lock.withLock {
            if let madeClients { return madeClients }
            let made = try makeClients()
            madeClients = made
            return made
        }
    }

    /// Starts both threads.
    public func start() {
        mainThread.start { [self] in tick() }
        lostThread.start { [self] in checkLost() }
    }

    /// Stops both threads and gives the lease up, so another worker takes over at once.
    public func stop() {
        mainThread.stop()
        lostThread.stop()
        let held = lock.withLock { lease.isHeld(now: monotonicMilliseconds()) }
        if held {
            do {
                try leaseStore.release(owner: owner)
                logger.notice("scheduler for \(topic) handed over")
            } catch {
                logger.warning("could not give the scheduler lease up (it expires by itself): \(error)")
            }
        }
    }

    /// Whether this worker is the active scheduler now.
    public var isActive: Bool { lock.withLock { lease.isHeld(now: monotonicMilliseconds()) } }

    // MARK: - The scheduler thread

    private func tick() {
        renewLease()
        guard isActive else { return }
        // Ticks first: a tick is queued at most ``TickPlanner/catchUpWindow`` late, and a large
        // release of due tasks must not push it past that and skip it. Each goes on when the
        // other fails: a periodic task that cannot be queued must not hold every due task back.
        var failures: [String] = []
        do { try queueTicks() } catch { failures.append("\(error)") }
        do { try releaseDueTasks() } catch { failures.append("\(error)") }
        if failures.isEmpty {
            _ = tickProblems.cleared()
        } else if tickProblems.shouldReport(failures.joined(separator: "; "), at: .now) {
            logger.warning("scheduler: \(failures.joined(separator: "; ")) (trying again shortly)")
        }
    }

    private func renewLease() {
        let now = monotonicMilliseconds()
        let (due, wasHeld, duration) = lock.withLock { (lease.shouldAttempt(now: now), lease.isHeld(now: now), lease.duration) }
        guard due else { return }
        var held: Bool?
        do {
            held = try leaseStore.takeOrRenew(owner: owner, duration: duration)
            _ = leaseProblems.cleared()
        } catch {
            if leaseProblems.shouldReport("\(error)", at: .now) { logger.warning("scheduler: cannot renew the lease: \(error)") }
        }
        let isHeld = lock.withLock {
            lease.attempted(sentAt: now, held: held)
            return lease.isHeld(now: monotonicMilliseconds())
        }
        if isHeld && !wasHeld {
            logger.notice("scheduler for \(topic) active on this worker")
        } else if wasHeld && !isHeld {
            logger.notice("scheduler for \(topic) no longer active on this worker")
        }
    }

    /// Publishes every SCHEDULED task that is due, queuing the ticks that come due between
    /// its rounds (a round is up to 1,000 tasks per shard), however long the whole takes.
    private func releaseDueTasks() throws {
        let store = try clients().publisher.store
        try sweep(store, why: "due", publishing: { try publish($0, .due) }) { call in
            let (tasks, more) = try store.releaseDue(topic: topic, at: currentEpochMilliseconds(), shard: call.shard)
            return (tasks.map(\.message), more ? "" : nil)
        } betweenRounds: {
            try? queueTicks()  // a failure is reported by the next tick, which tries again
        }
    }

    /// Queues the periodic tasks whose tick has come.
    private func queueTicks() throws {
        let plugins = registry.plugins.filter { $0.isLoaded && $0.schedule != nil }
        let schedules = Dictionary(uniqueKeysWithValues: plugins.map { ($0.type, $0.schedule!) })
        let ticks = planner.due(schedules, now: currentEpochMilliseconds())
        if !ticks.isEmpty {
            let arguments = Dictionary(uniqueKeysWithValues: plugins.map { ($0.type, $0.scheduleArgs) })
            let declarations = ticks.map { TaskDeclaration(id: $0.id, type: $0.type, args: arguments[$0.type] ?? []) }
            for task in try clients().publisher.publish(declarations) {
                switch task.outcome {
                case .published: logger.info("queued periodic task \(task.message.id)")
                case .failed(let reason): logger.error("periodic task \(task.message.id): \(reason)")
                case .duplicate, .scheduled: break  // queued by the scheduler before this one
                }
            }
        }
        planner.queued(ticks, scheduled: schedules.keys)
    }

    // MARK: - The lost-task thread

    private func checkLost() {
        // A new term of this worker as the scheduler starts from the handover kept in Redis (a
        // takeover): where the last scheduler's looks reached, and the end offsets it saw.
        let active = isActive
        defer { wasActiveForLost = active }
        takeCopiesRefused()
        guard active else { return }
        if !wasActiveForLost { awaitsHandover = true }
        do {
            let store = try clients().publisher.store
            if awaitsHandover {
                lostRule.restart(handover: try store.handover(of: topic))
                awaitsHandover = false
            }
            guard let partitions = try readPartitions() else { return }
            try sendOwedCopies(store)
            // PROCESSING tasks lose their message too when the broker loses its log (see
            // ``TaskScripts/lost``).
            let counts = try store.lostCheckCounts()
            let now = currentEpochMilliseconds()
            if let scan = lostRule.check(
                now: now, partitions: partitions, queued: counts.queued, processing: counts.processing,
                sentAgain: counts.sentAgain)
            {
                try lookForLost(scan, in: store, at: now)
            }
            // Before the handover: the ends kept must not move while a copy is owed.
            takeCopiesRefused()
            if let handover = lostRule.handoverToStore(now: now) {
                try store.storeHandover(handover, of: topic)
                lostRule.handoverStored(handover, at: now)
            }
            _ = lostProblems.cleared()
        } catch {
            if lostProblems.shouldReport("\(error)", at: .now) {
                logger.warning("scheduler: looking for lost tasks: \(error) (trying again shortly)")
            }
        }
    }

    /// Takes the tasks `scan` finds lost and publishes them again.
    private func lookForLost(_ scan: LostTaskRule.Scan, in store: TaskStore, at now: Int64) throws {
        if scan.brokerLostLog {
            logger.warning(
                "the broker lost the log of \(topic) (an end offset went down, or is below the one kept in Redis): looking for tasks to publish again")
        }
        var looked = 0
        do {
            try sweep(store, why: "lost", publishing: { try publish($0, .lost) }) { call in
                let taken = try store.takeLost(
                    topic: topic, queuedFrom: scan.from, to: scan.to, cutoff: scan.cutoff,
                    includingProcessing: scan.brokerLostLog, at: now, shard: call.shard, cursor: call.cursor)
                looked += taken.looked
                return (taken.tasks, taken.cursor.isEmpty ? nil : taken.cursor)
            }
            logger.debug("looked for lost tasks of \(topic) among \(looked) ids (queued from \(scan.from))")
        } catch {
            lostRule.scanFailed(scan)
            throw error
        }
    }

    /// Publishes again the copies the broker did not take at an earlier check, of the tasks
    /// still QUEUED or PROCESSING (see ``LostTaskRule/copiesDue(_:)``).
    private func sendOwedCopies(_ store: TaskStore) throws {
        let owed = lostRule.copiesOwed
        guard !owed.isEmpty else { return }
        let records = try store.records(ids: owed)
        let due = Set(lostRule.copiesDue(Array(zip(owed, records.map { $0?.status }))))
        let now = currentEpochMilliseconds()
        try publish(records.compactMap { $0 }.filter { due.contains($0.id) }.map { $0.message(orQueuedAt: now) }, .owed)
    }

    /// Hands the copies the publishes of both threads owe to `lostRule` (see ``copiesRefused``).
    private func takeCopiesRefused() {
        let ids = lock.withLock {
            defer { copiesRefused = [] }
            return copiesRefused
        }
        lostRule.copiesRefused(ids)
    }

    /// The topic's partitions as the broker and the group's commits show them; `nil` when the
    /// topic does not exist: one seen before (a broker that lost it) is made again, and its tasks
    /// are found once it is back; one never seen is not made yet, and has lost nothing.
    private func readPartitions() throws -> [LostTaskRule.Partition]? {
        let lags = try clients().lagReader.lag(topic: topic)
        guard !lags.isEmpty else {
            guard let had = lostRule.partitionsSeen else { return nil }
            logger.warning("topic \(topic) is gone (a broker that lost it?): creating it again")
            _ = try clients().publisher.ensureTopic(had: had)
            return nil
        }
        return lags.map {
            LostTaskRule.Partition(partition: $0.partition, consumedTo: $0.committed ?? ($0.end - $0.lag), end: $0.end)
        }
    }

    /// Walks the task shards as ``ShardSweep`` says, handing `publishing` what `take` takes
    /// from them (given a call, its tasks and where to go on in the shard, `nil` when it is
    /// done), with `betweenRounds` run before each further round while this worker is still the
    /// scheduler. Throws the failures of the shards it left out, once it has been through the others.
    private func sweep(
        _ store: TaskStore, why: String, publishing: ([TaskMessage]) throws -> Void,
        take: (ShardSweep.Call) throws -> ([TaskMessage], next: String?), betweenRounds: () -> Void = {}
    ) throws {
        var sweep = ShardSweep(shards: store.keys.shards)
        while true {
            switch sweep.next() {
            case .call(let call):
                do {
                    let (tasks, next) = try take(call)
                    sweep.took(tasks, next: next)
                } catch {
                    sweep.failed("\(error)")
                }
            case .publish(let tasks):
                try publishing(tasks)
            case .nextRound:
                guard isActive else { return }
                betweenRounds()
            case .done(let failures):
                guard !failures.isEmpty else { return }
                let shards = failures.map { "shard \($0.shard) of \(sweep.shards): \($0.error)" }
                throw YADTQError(
                    .redis, "\(why) tasks: \(shards.joined(separator: "; "))",
                    remedy: "The other shards went on; these are tried again at the next run")
            }
        }
    }

    /// What a publish of the scheduler sends, for its log line.
    private enum Publication: String {
        case due = "due tasks"
        case lost = "lost tasks"
        case owed = "tasks owed a copy"
    }

    /// Publishes tasks QUEUED (or, lost, PROCESSING) in Redis. Those the broker did not take that
    /// still wait for a copy are owed one (``copiesRefused``), all of them when the publish fails
    /// as a whole: PROCESSING ones, as ``TaskScripts/failUnpublished`` fails only QUEUED tasks and
    /// a PROCESSING one may still run on a worker (see ``LostTaskRule``), and QUEUED ones the
    /// broker did not answer for, which the republish leaves QUEUED (see
    /// ``TaskPublisher/republish(_:to:policy:)``). Should this worker lose the lease first, a due
    /// task of those is in `resent` (see ``TaskScripts/release``), so the check for lost tasks, on
    /// whichever worker then runs the scheduler, publishes it again.
    private func publish(_ messages: [TaskMessage], _ what: Publication) throws {
        guard !messages.isEmpty else { return }
        do {
            let waiting = try publishReporting(messages, what)
            lock.withLock { copiesRefused += waiting }
        } catch {
            lock.withLock { copiesRefused += messages.map(\.id) }
            throw error
        }
    }

    /// Publishes `messages` and logs what became of them; returns those still owed a copy.
    private func publishReporting(_ messages: [TaskMessage], _ what: Publication) throws -> [String] {
        let publisher = try clients().publisher
        let refused = try publisher.republish(messages, policy: .schedule).filter { $0.refusal != nil }
        var failures = ""
        var waiting: [String] = []
        if let reason = refused.first?.refusal {
            let statuses = try publisher.store.statuses(of: refused.map(\.message.id))
            let count = { (status: TaskStatus) in statuses.filter { $0 == status }.count }
            let (queued, processing, failed) = (count(.queued), count(.processing), count(.failed))
            waiting = zip(refused, statuses).filter { $0.1 == .queued || $0.1 == .processing }.map(\.0.message.id)
            let ended = refused.count - failed - waiting.count
            let again = "offered again at the next check for lost tasks"
            failures = "; not taken by the broker (\(reason)): "
                + [
                    failed > 0 ? "\(failed) now FAILED (yadtq-ctl retry publishes them again)" : nil,
                    queued > 0 ? "\(queued) still QUEUED, as the broker did not answer (\(again))" : nil,
                    processing > 0 ? "\(processing) still PROCESSING (\(again))" : nil,
                    ended > 0 ? "\(ended) ended meanwhile" : nil,
                ].compactMap { $0 }.joined(separator: ", ")
        }
        logger.notice("published \(messages.count - refused.count) \(what.rawValue) to \(topic)\(failures)")
        return waiting
    }
}
