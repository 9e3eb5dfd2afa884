// The scheduler's rules, as values without I/O: each takes what the scheduler observed
// (times in epoch milliseconds, what Redis or the broker answered) and says what to do.
// `Scheduler` performs what they decide; the unit tests drive them with made-up events.

/// Whether this worker may act as the scheduler: it holds the Redis lease, and it knows so
/// only up to the time its last successful take or renewal promised, minus a margin for
/// clock drift and the time the answer took. A holder that cannot reach Redis stops acting
/// before the lease can pass to another worker, so two schedulers never act at once.
public struct SchedulerLease: Sendable, Equatable {
    /// How long a take or renewal keeps the lease; a dead holder's lease passes on after it.
    public var duration: Duration
    /// How often the lease is taken or renewed.
    public var renewEvery: Duration
    /// Acting stops this long before the promised end.
    public var margin: Duration
    /// Until when this worker may act (ms on the monotonic clock, so a wall clock stepped back
    /// does not keep a holder acting past the lease Redis let expire); `nil` when it does not
    /// hold the lease.
    public private(set) var heldUntil: Int64?
    private var lastAttempt: Int64?

    public init(duration: Duration = .seconds(5), renewEvery: Duration = .seconds(1), margin: Duration = .seconds(1)) {
        precondition(renewEvery + margin < duration, "renewals must come well before the lease ends")
        self.duration = duration
        self.renewEvery = renewEvery
        self.margin = margin
    }

    /// Whether it is time to take or renew the lease.
    public func shouldAttempt(now: Int64) -> Bool {
        lastAttempt.map { now - $0 >= renewEvery.inMilliseconds } ?? true
    }

    /// Records a take or renewal sent at `sentAt`: `held` is Redis's answer, `nil` when
    /// Redis did not answer (then the lease is kept only as long as it was promised).
    public mutating func attempted(sentAt: Int64, held: Bool?) {
        lastAttempt = sentAt
        switch held {
        case true?: heldUntil = sentAt + duration.inMilliseconds - margin.inMilliseconds
        case false?: heldUntil = nil
        case nil: break
        }
    }

    /// Whether this worker may act as the scheduler at `now`.
    public func isHeld(now: Int64) -> Bool { heldUntil.map { now < $0 } ?? false }
}

/// Which periodic ticks to queue: for each plugin with a schedule, every tick not older than
/// the catch-up window and not queued yet by this scheduler. Each tick's task id is
/// `<type>@<tick time>` (``PluginSchedule/tickID(type:tick:)``), so a tick another scheduler
/// already queued (before a failover) is a duplicate Redis leaves alone — while its record is
/// kept, which is why the window is never longer than the shortest retention.
public struct TickPlanner: Sendable {
    /// How late a tick is still queued: long enough to ride out a scheduler failover; a tick
    /// missed by more (no worker running at that time) is skipped, not caught up.
    public static let catchUpWindow: Duration = .seconds(10)

    /// How late a tick is still queued: ``catchUpWindow``, or the shortest retention when that
    /// is shorter. A tick's record is kept at least that long after its tick, so a scheduler
    /// that takes over finds every tick of its window queued already, if it was; a longer
    /// window would queue again, and run twice, a tick that ran and was pruned.
    public let window: Duration

    /// A tick to queue.
    public struct Tick: Sendable, Equatable {
        public var type: String
        public var at: Int64
        public var id: String { PluginSchedule.tickID(type: type, tick: at) }

        public init(type: String, at: Int64) {
            self.type = type
            self.at = at
        }
    }

    private var lastQueued: [String: Int64] = [:]

    public init(retention: Retention = .standard) {
        window = min(Self.catchUpWindow, retention.succeeded, retention.failed)
    }

    /// The ticks due at `now` for the given schedules (type -> schedule), each type's oldest first.
    public func due(_ schedules: [String: PluginSchedule], now: Int64) -> [Tick] {
        schedules.keys.sorted().flatMap { type in
            let notBefore = max(now - window.inMilliseconds, (lastQueued[type] ?? Int64.min) + 1)
            return schedules[type]!.ticks(from: notBefore, through: now).map { Tick(type: type, at: $0) }
        }
    }

    /// Records that these ticks are queued (or were already), and forgets types no longer scheduled.
    public mutating func queued(_ ticks: [Tick], scheduled types: some Sequence<String>) {
        for tick in ticks { lastQueued[tick.type] = max(lastQueued[tick.type] ?? Int64.min, tick.at) }
        let kept = Set(types)
        lastQueued = lastQueued.filter { kept.contains($0.key) }
    }
}

/// Finds when QUEUED tasks must have lost their Kafka message, from the group's committed
/// offsets and the partitions' end offsets, sampled over time. Nothing is written per task
/// queued for it: a task's message is looked for by its queued time, or, for the few tasks
/// whose message was sent again after it (released from SCHEDULED, retried, published again)
/// or that were written late, by the time it was last sent, kept in `resent` (see
/// ``TaskScripts/lost``).
///
/// - A sample of the end offsets is taken at time t. Once the group's committed offset on
///   every partition has reached the sample, every message published before t was consumed
///   and its task finished; so a task still QUEUED that was queued before t (minus ``slack``,
///   the time a producer may take between its QUEUED write and the broker's append) had its
///   message lost, or never sent (a producer that died in between).
/// - An end offset that goes down means the broker lost the partition's log (a broker
///   restarted empty, a topic deleted and made again): every task QUEUED, or PROCESSING, before
///   the previous check is lost. The end offsets are also kept in Redis, with how far the looks
///   reached (``Handover``, ``handoverToStore(now:)``), and a scheduler taking over compares the
///   broker's with them (``restart(handover:)``): a broker restarted empty while no scheduler
///   ran (the whole stack restarted) shows no end going down to a scheduler that never saw the
///   old ends. A look after a lost log that did not finish is done again at the next check, and
///   the ends are not kept lower until it is done and every copy it owes is sent, so a
///   scheduler that dies meanwhile leaves the next one the old ends to find the loss by.
///
/// Each check says which queued times to look at: those queued since the previous check (and
/// the tasks sent again since, whose queued time is older; after a lost log, every task in
/// flight too), or all of them (``Scan/from`` 0) at the first look of a term that was handed no
/// ``Handover/lookedTo`` (a takeover after a scheduler that kept none: an older build's, or one
/// that never finished a look), as after a lost log before such a look. With no task QUEUED
/// (nor PROCESSING, after a lost log) and none sent again waiting to be looked at, nothing is
/// looked at.
///
/// A PROCESSING task taken after a lost log whose copy the broker does not take stays
/// PROCESSING (it may still run on a worker, a long task whose outcome is worth keeping), and
/// is owed a copy: offered again at every check (``copiesRefused(_:)``, ``copiesDue(_:)``)
/// until the broker takes one or the task is PROCESSING no longer. Failing it instead would
/// throw away the outcome of an attempt that may still end SUCCESS; leaving it alone would
/// leave a task whose retry its worker dropped with the partition PROCESSING for ever. So is a
/// QUEUED task whose copy the broker did not answer for in time (out of reach, or cut off from
/// this worker alone): failing it would make an operator retry every task a broker outage
/// overlapped. A due task the scheduler released whose message the broker did not answer for is
/// owed one the same way.
///
/// The end offsets of some brokers are low (Tansu 0.6 answers the start of the last batch):
/// a sample then counts as reached a little early, and a task still waiting in a long last
/// batch can be taken as lost after ``slack``; it is then published twice and its second
/// copy finds it already finished (or running) and is skipped. ``slack`` is kept generous
/// for that reason.
public struct LostTaskRule: Sendable {
    /// The end offsets are sampled at most this often.
    public var sampleEvery: Duration
    /// A task counts as lost only if it was queued this long before a reached sample.
    public var slack: Duration
    /// The ``Handover`` is kept in Redis at most this often, when it changed.
    public var storeEvery: Duration
    /// ... and at least this often, changed or not, so that its key (kept a week after its
    /// last write) outlives a quiet topic.
    public var storeAgainEvery: Duration

    /// A task whose QUEUED record is written more than this after its queued time (a producer
    /// paused, or its call replayed after a Redis outage) is kept with the tasks sent again
    /// (see ``TaskScripts/queue``): a check may have looked past its queued time already. At
    /// most ``slack``, which covers a write that is less late (no check looks at queued times
    /// less than ``slack`` old), with room for the clocks of Redis and the scheduler to differ.
    public static let lateWrite: Duration = .seconds(10)

    /// What to look at: tasks queued from `from` to `to`, and (unless `from` is 0, which looks
    /// at every queued time) the tasks sent again and, after a lost log, those in flight, that
    /// are still QUEUED (or, after a lost log, PROCESSING) and whose message was last sent
    /// before `cutoff`, are lost.
    public struct Scan: Sendable, Equatable {
        public var from: Int64
        public var to: Int64
        public var cutoff: Int64
        /// Why: the broker lost its log (for the log line).
        public var brokerLostLog: Bool

        public init(from: Int64, to: Int64, cutoff: Int64, brokerLostLog: Bool) {
            self.from = from
            self.to = to
            self.cutoff = cutoff
            self.brokerLostLog = brokerLostLog
        }
    }

    /// What the check saw of one partition.
    public struct Partition: Sendable, Equatable {
        public var partition: Int32
        /// Where the group will go on from: its committed offset, else the partition's start.
        public var consumedTo: Int64
        public var end: Int64

        public init(partition: Int32, consumedTo: Int64, end: Int64) {
            self.partition = partition
            self.consumedTo = consumedTo
            self.end = end
        }
    }

    /// What a scheduler keeps in Redis for the one that takes over from it (`ends:<topic>`, see
    /// ``TaskStore/handover(of:)``).
    public struct Handover: Sendable, Equatable {
        /// Partition -> the end offset the scheduler last saw.
        public var ends: [Int32: Int64]
        /// Every task queued before this time (ms) was looked at by a look that finished, and
        /// every task sent again or written late since is in `resent`: the next scheduler looks
        /// from here, not at every queued time. `nil`: not known (no look of the term finished
        /// yet, or a scheduler of an older build kept the ends since: it writes them whole,
        /// without this, and did not keep its tasks sent again in `resent`).
        public var lookedTo: Int64?

        public init(ends: [Int32: Int64] = [:], lookedTo: Int64? = nil) {
            self.ends = ends
            self.lookedTo = lookedTo
        }
    }

    private struct Sample: Sendable {
        var at: Int64
        var ends: [Int32: Int64]
    }

    private var samples: [Sample] = []
    private var lastEnds: [Int32: Int64] = [:]
    private var lastCheck: Int64?
    private var lastSample: Int64?
    private var scannedTo: Int64 = 0
    /// Whether every queued time before `scannedTo` has been looked at, by this term or by the
    /// one that handed it ``Handover/lookedTo``. A term handed none does not know what the last
    /// one looked at, nor which tasks an older build sent again without keeping them in `resent`.
    private var lookedAtAll = false
    /// Tasks owed a copy: taken to be published again, or released when due, but not taken by
    /// the broker. At most the tasks the looks took and the due tasks released, so at most those
    /// QUEUED and PROCESSING then.
    private var owed: Set<String> = []
    /// A look after a lost log that did not finish: done again at the next check.
    private var lostLogLook: Scan?
    /// The handover as last kept in Redis, and when.
    private var stored = Handover()
    private var lastStored: Int64?

    public init(
        sampleEvery: Duration = .seconds(2), slack: Duration = .seconds(30), storeEvery: Duration = .seconds(5),
        storeAgainEvery: Duration = .seconds(3600)
    ) {
        precondition(slack >= Self.lateWrite, "a write less late than lateWrite must be found by its queued time")
        self.sampleEvery = sampleEvery
        self.slack = slack
        self.storeEvery = storeEvery
        self.storeAgainEvery = storeAgainEvery
    }

    /// Forgets what it saw, for a new term as the scheduler: compares the broker's end offsets
    /// at the first check with those `handover` kept (one below means the log was lost
    /// meanwhile), and looks from its ``Handover/lookedTo`` on, or at every queued time when it
    /// has none. The copies owed are kept: nothing else would send them.
    public mutating func restart(handover: Handover = Handover()) {
        let owed = owed
        self = LostTaskRule(
            sampleEvery: sampleEvery, slack: slack, storeEvery: storeEvery, storeAgainEvery: storeAgainEvery)
        self.owed = owed
        lastEnds = handover.ends
        stored = handover
        if let lookedTo = handover.lookedTo {
            scannedTo = lookedTo
            lookedAtAll = true
        }
    }

    /// The handover to keep in Redis at `now`, if any: the end offsets of the latest check and
    /// how far the looks reached, when they changed (at most every ``storeEvery``), when none was
    /// written in this term, or every ``storeAgainEvery``. Ask once the look the latest check
    /// gave (if any) is done: a look that failed (``scanFailed(_:)``) must be told first. None
    /// while the work after a lost log is unfinished (a look to do again, copies owed): the
    /// ends kept stay those from before the loss, so a scheduler that takes over meanwhile
    /// finds it again. Report the write with ``handoverStored(_:at:)``.
    public func handoverToStore(now: Int64) -> Handover? {
        guard lostLogLook == nil, owed.isEmpty, !lastEnds.isEmpty else { return nil }
        let handover = Handover(ends: lastEnds, lookedTo: lookedAtAll ? scannedTo : nil)
        guard let lastStored else { return handover }
        let since = now - lastStored
        let due = handover != stored ? since >= storeEvery.inMilliseconds : since >= storeAgainEvery.inMilliseconds
        return due ? handover : nil
    }

    /// How many partitions the topic had, as the latest check or the handover show them; `nil`
    /// when neither saw it: a topic not made yet, which has lost nothing.
    public var partitionsSeen: Int? { lastEnds.keys.max().map { Int($0) + 1 } }

    /// Redis took the handover ``handoverToStore(now:)`` gave.
    public mutating func handoverStored(_ handover: Handover, at now: Int64) {
        stored = handover
        lastStored = now
    }

    /// Tasks taken to be published again, or released when due, whose message did not reach the
    /// broker (not answered for, or the publish failed), and that still wait for one: they are
    /// offered again at the next check.
    public mutating func copiesRefused(_ ids: some Sequence<String>) {
        owed.formUnion(ids)
    }

    /// The tasks owed a copy, to be read from Redis and handed to ``copiesDue(_:)``.
    public var copiesOwed: [String] { owed.sorted() }

    /// Of the tasks owed a copy, given their status in Redis now (`nil`: no such task), the ones
    /// to publish again: those still QUEUED or PROCESSING. The others are forgotten: ended
    /// (their attempt that still ran finished them, an operator cancelled or failed them), or
    /// purged. Those returned are forgotten too, until ``copiesRefused(_:)`` says otherwise.
    public mutating func copiesDue(_ statuses: [(id: String, status: TaskStatus?)]) -> [String] {
        owed.subtract(statuses.map(\.id))
        return statuses.filter { $0.status == .queued || $0.status == .processing }.map(\.id)
    }

    /// The look `scan` did not finish (a shard failed, or the broker): the next scan starts where
    /// it started, so what it missed is looked at again.
    ///
    /// A look after a lost log is done again, the same, at the next check: no later look takes
    /// PROCESSING tasks.
    public mutating func scanFailed(_ scan: Scan) {
        scannedTo = min(scannedTo, scan.from)
        if scan.brokerLostLog {
            lostLogLook = scan
        } else if scan.from == 0 {
            lookedAtAll = false
        }
    }

    /// One check at `now`: the partitions as the broker answered, how many tasks are QUEUED
    /// and PROCESSING, and how many ids `resent` holds (``TaskStore/lostCheckCounts()``: tasks
    /// sent again, whose ids leave it only when a look finds their task no longer QUEUED, so
    /// they are looked at even with nothing QUEUED). Returns what to look at, if anything.
    ///
    /// The two counts are told apart because the two kinds of look take different tasks: an
    /// ordinary look takes only QUEUED tasks (a PROCESSING task's worker holds its message),
    /// a look after a lost log takes PROCESSING ones too. With one sum, a queue whose only
    /// unfinished tasks run would be looked through every 2 s for nothing.
    public mutating func check(now: Int64, partitions: [Partition], queued: Int, processing: Int, sentAgain: Int = 0)
        -> Scan?
    {
        defer { lastCheck = now }
        let ends = Dictionary(partitions.map { ($0.partition, $0.end) }, uniquingKeysWith: max)
        let lost = ends.contains { partition, end in lastEnds[partition].map { end < $0 } ?? false }
        lastEnds = ends
        if lost {
            samples = []
            lastSample = nil
            let cutoff = lastCheck ?? now
            // Every queued time before `scannedTo` was looked at: a task queued then and still
            // QUEUED is in `resent`, and a PROCESSING one is in flight (`running`), which the
            // look reads instead of those queued times (see ``TaskScripts/lost``).
            let from = lookedAtAll ? min(scannedTo, cutoff) : 0
            scannedTo = max(scannedTo, cutoff)
            lookedAtAll = true
            lostLogLook = nil
            return queued + processing > 0 ? Scan(from: from, to: cutoff, cutoff: cutoff, brokerLostLog: true) : nil
        }
        if let look = lostLogLook {
            lostLogLook = nil
            if queued + processing > 0 {
                scannedTo = max(scannedTo, look.cutoff)
                return look
            }
        }
        if lastSample.map({ now - $0 >= sampleEvery.inMilliseconds }) ?? true {
            samples.append(Sample(at: now, ends: ends))
            lastSample = now
        }
        let consumed = Dictionary(partitions.map { ($0.partition, $0.consumedTo) }, uniquingKeysWith: max)
        guard
            let reached = samples.lastIndex(where: { sample in
                sample.ends.allSatisfy { partition, end in (consumed[partition] ?? 0) >= end }
            })
        else { return nil }
        let cutoff = samples[reached].at - slack.inMilliseconds
        samples.removeFirst(reached + 1)
        guard cutoff > scannedTo else { return nil }
        defer { scannedTo = cutoff }
        if !lookedAtAll {
            lookedAtAll = true
            // Nothing QUEUED at all: none is lost, and a task written or sent again from now on
            // with an older queued time is late by more than ``lateWrite``, so it is in `resent`.
            guard queued > 0 else { return nil }
            return Scan(from: 0, to: cutoff, cutoff: cutoff, brokerLostLog: false)
        }
        guard queued > 0 || sentAgain > 0 else { return nil }
        return Scan(from: scannedTo, to: cutoff, cutoff: cutoff, brokerLostLog: false)
    }
}

/// One walk of the scheduler over the task shards (16 on a Redis Cluster, each on the master
/// that holds its slot), releasing due tasks or taking lost ones: which shard to call next, from
/// where in it, and when to hand what the calls took over for publishing.
///
/// - A shard whose call fails (its master away: a failover in progress) is left out of the rest
///   of the walk, and the walk goes on with the next shard: one master must not hold back the
///   tasks of all the others. The walk ends with the failures, for the log; the next walk (the
///   next tick) tries every shard again.
/// - What the shards before a failure took is handed over for publishing before the next call:
///   those tasks are QUEUED (or marked published again) already, and the next call may wait
///   long for a master that does not answer. Otherwise what a round took is handed over at its end.
/// - A shard that has more (a full page) is called again in a next round, from where it stopped,
///   after the others: the caller may do other work between rounds (queue periodic ticks).
public struct ShardSweep: Sendable, Equatable {
    /// One call: a shard, and where in it to go on (`""`: from its start).
    public struct Call: Sendable, Equatable {
        public var shard: Int
        public var cursor = ""
    }

    /// A shard whose call failed, and why.
    public struct Failure: Sendable, Equatable {
        public var shard: Int
        public var error: String
    }

    /// What to do next.
    public enum Step: Sendable, Equatable {
        /// Make this call, then report it with ``took(_:next:)`` or ``failed(_:)``.
        case call(Call)
        /// Publish these tasks, then ask again.
        case publish([TaskMessage])
        /// A round is over and shards have more: the caller may stop here, or ask again to go on.
        case nextRound
        /// The walk is over; these shards failed (tried again by the next walk).
        case done(failures: [Failure])
    }

    public let shards: Int
    private var pending: [Call]
    private var again: [Call] = []
    private var taken: [TaskMessage] = []
    private var failures: [Failure] = []
    private var publishFirst = false

    public init(shards: Int) {
        self.shards = shards
        pending = (0..<shards).map { Call(shard: $0) }
    }

    public mutating func next() -> Step {
        if !taken.isEmpty && (publishFirst || pending.isEmpty) {
            defer { taken = [] }
            return .publish(taken)
        }
        publishFirst = false
        if let call = pending.first { return .call(call) }
        guard again.isEmpty else {
            (pending, again) = (again, [])
            return .nextRound
        }
        return .done(failures: failures)
    }

    /// The call ``next()`` gave took `tasks`; `next` is where to go on in its shard, `nil` when
    /// the shard has no more.
    public mutating func took(_ tasks: [TaskMessage], next: String?) {
        let call = pending.removeFirst()
        taken += tasks
        if let next { again.append(Call(shard: call.shard, cursor: next)) }
    }

    /// The call ``next()`` gave failed with `error`.
    public mutating func failed(_ error: String) {
        let call = pending.removeFirst()
        failures.append(Failure(shard: call.shard, error: error))
        publishFirst = true
    }
}
