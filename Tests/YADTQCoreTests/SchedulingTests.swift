import Testing
import YADTQCore

/// 2026-12-01T09:05:00.000Z, a Tuesday.
private let tuesday: Int64 = 1_796_115_900_000

@Suite("Delayed tasks: delay and at")
struct TaskStartTests {
    @Test("a delay reads like every other duration, or as a number of seconds")
    func delays() throws {
        #expect(try TaskStart.readDelay("500ms") == .after(.milliseconds(500)))
        #expect(try TaskStart.readDelay("30s") == .after(.seconds(30)))
        #expect(try TaskStart.readDelay("5m") == .after(.seconds(300)))
        #expect(try TaskStart.readDelay("2h") == .after(.seconds(7200)))
        #expect(try TaskStart.readDelay("1d") == .after(.seconds(86400)))
        #expect(try TaskStart.readDelay(30) == .after(.seconds(30)))
        #expect(try TaskStart.readDelay(1.5) == .after(.milliseconds(1500)))
        #expect(TaskStart.after(.seconds(30)).dueAt(now: 1000) == 31_000)
    }

    @Test("a bad delay is refused with what to write", arguments: ["soon", "-5s", "", "5 weeks", "400d"])
    func badDelays(_ text: String) {
        #expect(throws: TaskLineError.self) { try TaskStart.readDelay(.string(text)) }
        do {
            _ = try TaskStart.readDelay(.string(text))
        } catch {
            #expect(error.kind == .invalidStart)
            #expect(error.reason.contains("\"30s\""))
        }
    }

    @Test("at reads RFC 3339 (offsets, fractions) and epoch milliseconds; the past is fine")
    func times() throws {
        #expect(try TaskStart.readAt("2026-12-01T09:05:00Z", now: tuesday) == .at(tuesday))
        #expect(try TaskStart.readAt("2026-12-01T10:05:00+01:00", now: tuesday) == .at(tuesday))
        #expect(try TaskStart.readAt("2026-12-01T09:05:00.250Z", now: tuesday) == .at(tuesday + 250))
        #expect(try TaskStart.readAt(.int(tuesday), now: tuesday) == .at(tuesday))
        #expect(try TaskStart.readAt(.string(String(tuesday)), now: tuesday) == .at(tuesday))
        #expect(try TaskStart.readAt("2001-01-01T00:00:00Z", now: tuesday) == .at(978_307_200_000))
    }

    @Test("a bad at is refused", arguments: ["tomorrow", "2026-13-01T00:00:00Z", "2026-12-01 09:05", "2030-01-01T00:00:00Z"])
    func badTimes(_ text: String) {
        #expect(throws: TaskLineError.self) { try TaskStart.readAt(.string(text), now: tuesday) }
    }

    @Test(
        "an at that names no real time, or not in the one shape, is refused with the shape to write",
        arguments: [
            "2027-02-30T00:00:00Z", "2026-02-29T12:00:00Z", "2026-04-31T00:00:00Z", "2026-12-01T24:00:00Z",
            "2026-12-01T09:60:00Z", "2026-12-01T09:05:60Z", "2026-12-01T09:05:00+99:99", "2026-12-01T09:05:00+24:00",
            "2026-12-01T09:05:00+01:60", "2027-1-1T00:00:00Z", "2026-12-01T9:05:00Z", "2026-12-01T09:05Z",
            "2026-12-01T09:05:00", "2026-12-01T09:05:00.Z", "2026-12-01T09:05:00+0100", "20261201T090500Z",
            " 2026-12-01T09:05:00Z", "2026-12-01T09:05:00Z ", "２０２６-12-01T09:05:00Z",
        ])
    func impossibleTimes(_ text: String) {
        #expect(throws: TaskLineError.self) { try TaskStart.readAt(.string(text), now: tuesday) }
        do {
            _ = try TaskStart.readAt(.string(text), now: tuesday)
        } catch {
            #expect(error.kind == .invalidStart)
            #expect(error.reason.contains("YYYY-MM-DDTHH:MM:SS"), "\(error.reason)")
        }
    }

    @Test("the edges of a real time read: leap days, the last second, the widest offsets, long fractions")
    func edgeTimes() throws {
        #expect(try TaskStart.readAt("2024-02-29T00:00:00Z", now: tuesday) == .at(1_709_164_800_000))
        #expect(try TaskStart.readAt("2000-02-29T00:00:00Z", now: tuesday) == .at(951_782_400_000))
        #expect(try TaskStart.readAt("2026-12-01T23:59:59Z", now: tuesday) == .at(1_796_169_599_000))
        #expect(try TaskStart.readAt("2026-12-01T23:05:00+23:59", now: tuesday) == .at(1_796_079_960_000))
        #expect(try TaskStart.readAt("2026-12-01T00:00:00-09:05", now: tuesday) == .at(tuesday))
        #expect(try TaskStart.readAt("2026-12-01T09:05:00.123456789Z", now: tuesday) == .at(tuesday + 123))
        #expect(try TaskStart.readAt("2026-12-01T09:05:00.9999Z", now: tuesday) == .at(tuesday + 1000))
    }

    @Test("a numeric at in seconds is refused, not read as 1970", arguments: [JSONValue.int(1_796_115_900), "1796115900", 5])
    func atInSeconds(_ value: JSONValue) throws {
        #expect(throws: TaskLineError.self) { try TaskStart.readAt(value, now: tuesday) }
        do {
            _ = try TaskStart.readAt(value, now: tuesday)
        } catch {
            #expect(error.reason.contains("this looks like seconds since the epoch: give milliseconds (×1000) or an RFC 3339 time"))
        }
        #expect(try TaskStart.readAt(.int(100_000_000_000), now: tuesday) == .at(100_000_000_000), "March 1973 in ms")
        #expect(try TaskStart.readAt("1970-01-01T00:00:05Z", now: tuesday) == .at(5_000), "an RFC 3339 time in the past is fine")
    }

    @Test("a task line carries delay or at, never both")
    func declarations() throws {
        let delayed = try TaskLine.parse(line: #"{"type": "add", "args": [1, 2], "delay": "30s"}"#)
        #expect(delayed == .task(TaskDeclaration(type: "add", args: [1, 2], start: .after(.seconds(30)))))
        let timed = try TaskLine.parse(line: #"{"type": "add", "at": 1796115900000}"#)
        #expect(timed == .task(TaskDeclaration(type: "add", start: .at(tuesday))))
        #expect(throws: TaskLineError.self) { try TaskLine.parse(line: #"{"type": "add", "delay": "1s", "at": 5}"#) }
        #expect(throws: TaskLineError.self) { try TaskLine.parse(line: #"{"type": "add", "delay": "later"}"#) }
        #expect(throws: TaskLineError.self) { try TaskLine.parse(line: #"{"type": "add", "at": 1796115900}"#) }
    }
}

@Suite("Periodic tasks: every and cron")
struct PluginScheduleTests {
    @Test("every ticks on multiples of its interval since the epoch")
    func every() throws {
        let schedule = try #require(try PluginSchedule(every: "5m", cron: nil))
        #expect(schedule.ticks(from: tuesday - 600_000, through: tuesday + 1234) == [tuesday - 600_000, tuesday - 300_000, tuesday])
        #expect(schedule.ticks(from: tuesday + 1, through: tuesday + 1234) == [])
        #expect(schedule.nextTick(after: tuesday) == tuesday + 300_000)
        #expect(schedule.description == "every 5m")
    }

    @Test("every and cron: one of them, well formed")
    func badSchedules() throws {
        #expect(throws: ScheduleError.self) { try PluginSchedule(every: "30s", cron: "* * * * *") }
        #expect(throws: ScheduleError.self) { try PluginSchedule(every: "100ms", cron: nil) }
        #expect(throws: ScheduleError.self) { try PluginSchedule(every: "often", cron: nil) }
        #expect(try PluginSchedule(every: nil, cron: nil) == nil)
    }

    @Test("cron fields: numbers, *, lists, ranges, steps")
    func cronFields() throws {
        let every5 = try CronExpression(parsing: "*/5 * * * *")
        #expect(every5.matches(minuteStartingAt: tuesday))  // 09:05
        #expect(!every5.matches(minuteStartingAt: tuesday + 60_000))
        let list = try CronExpression(parsing: "0,30 9-17 * * 1-5")
        #expect(list.matches(minuteStartingAt: tuesday - 5 * 60_000))  // Tuesday 09:00
        #expect(!list.matches(minuteStartingAt: tuesday - 5 * 60_000 + 4 * 86_400_000))  // Saturday 09:00
        let stepped = try CronExpression(parsing: "10-40/15 * * * *")
        #expect(stepped.matches(minuteStartingAt: tuesday + 20 * 60_000))  // 09:25
        #expect(stepped.matches(minuteStartingAt: tuesday + 35 * 60_000))  // 09:40
        #expect(!stepped.matches(minuteStartingAt: tuesday + 30 * 60_000))  // 09:35 is not 10+15n
        let sunday = try CronExpression(parsing: "0 0 * * 7")
        #expect(sunday.matches(minuteStartingAt: tuesday - 9 * 3_600_000 - 5 * 60_000 - 2 * 86_400_000))
    }

    @Test("when both day fields are restricted, either matches")
    func dayFields() throws {
        // The 1st of the month, or any Friday, at midnight.
        let schedule = PluginSchedule.cron(try CronExpression(parsing: "0 0 1 * 5"))
        let midnight = tuesday - (9 * 60 + 5) * 60_000  // Tuesday the 1st
        #expect(schedule.nextTick(after: midnight - 1) == midnight)
        #expect(schedule.nextTick(after: midnight) == midnight + 3 * 86_400_000)  // Friday the 4th
    }

    @Test(
        "a bad cron says which field and why",
        arguments: [
            ("* * * *", "needs five fields"), ("61 * * * *", "minute field \"61\": \"61\" is not a number in range"),
            ("*/0 * * * *", "minute field \"*/0\": the step \"0\" is not a positive number"),
            ("5-1 * * * *", "minute field \"5-1\": \"5-1\" is not a range a-b with a ≤ b"),
            ("a * * * *", "minute field \"a\""), ("* * * 13 *", "month field \"13\""),
        ])
    func badCron(_ text: String, _ says: String) {
        #expect {
            try CronExpression(parsing: text)
        } throws: { error in
            (error as? ScheduleError)?.message.contains(says) == true
        }
    }

    @Test("a cron with no possible day has no next tick")
    func impossible() throws {
        #expect(PluginSchedule.cron(try CronExpression(parsing: "0 0 31 2 *")).nextTick(after: tuesday) == nil)
    }

    @Test("a tick's id is <type>@<UTC time>, a valid task id")
    func tickID() {
        let id = PluginSchedule.tickID(type: "report", tick: tuesday)
        #expect(id == "report@2026-12-01T09:05:00.000Z")
        #expect(TaskDeclaration.isValidID(id))
        #expect(TaskDeclaration.isValidID(PluginSchedule.tickID(type: String(repeating: "t", count: 64), tick: Int64(253_402_300_799_999))))
    }
}

@Suite("Scheduler rules")
struct SchedulerRuleTests {
    @Test("the lease: held only while promised, less the margin; renewals every second")
    func lease() {
        var lease = SchedulerLease(duration: .seconds(5), renewEvery: .seconds(1), margin: .seconds(1))
        #expect(lease.shouldAttempt(now: 0))
        #expect(!lease.isHeld(now: 0))
        lease.attempted(sentAt: 0, held: true)
        #expect(lease.isHeld(now: 3999))
        #expect(!lease.isHeld(now: 4000))
        #expect(!lease.shouldAttempt(now: 999))
        #expect(lease.shouldAttempt(now: 1000))
        lease.attempted(sentAt: 1000, held: nil)  // Redis did not answer: the promise stands
        #expect(lease.isHeld(now: 3999))
        #expect(!lease.isHeld(now: 4001))
        lease.attempted(sentAt: 2000, held: false)  // another worker holds it
        #expect(!lease.isHeld(now: 2001))
    }

    @Test("ticks: each once, late ones within the window, missed ones skipped")
    func ticks() throws {
        let schedules = ["report": try #require(try PluginSchedule(every: "1m", cron: nil))]
        var planner = TickPlanner()
        let due = planner.due(schedules, now: tuesday + 2000)
        #expect(due == [TickPlanner.Tick(type: "report", at: tuesday)])
        #expect(due[0].id == "report@2026-12-01T09:05:00.000Z")
        planner.queued(due, scheduled: schedules.keys)
        #expect(planner.due(schedules, now: tuesday + 3000).isEmpty, "queued once")
        // A fresh scheduler (a takeover) 30 s after the tick does not catch it up.
        #expect(TickPlanner().due(schedules, now: tuesday + 30_000).isEmpty)
        #expect(planner.due(schedules, now: tuesday + 60_500).map(\.at) == [tuesday + 60_000])
        planner.queued([], scheduled: [String]())
        #expect(planner.due([:], now: tuesday + 60_500).isEmpty, "a removed plugin has no ticks")
    }

    @Test("a scheduler that takes over queues every tick of the window, not only the latest; the window is at most the shortest retention")
    func ticksAfterTakeover() throws {
        let schedules = ["beat": try #require(try PluginSchedule(every: "2s", cron: nil))]
        // Taking over 5 s after the tick at `tuesday`: the ticks of the 10 s before are queued
        // (those already queued are duplicates Redis leaves alone).
        #expect(TickPlanner().due(schedules, now: tuesday + 5_000).map(\.at) == stride(from: tuesday - 4_000, through: tuesday + 4_000, by: 2_000).map { $0 })
        // Successes kept 3 s: a tick older than that may have run and been pruned, so it is not queued again.
        let shortRetention = TickPlanner(retention: Retention(succeeded: .seconds(3), failed: .seconds(3600)))
        #expect(shortRetention.window == .seconds(3))
        #expect(shortRetention.due(schedules, now: tuesday + 5_000).map(\.at) == [tuesday + 2_000, tuesday + 4_000])
    }

    private func partitions(_ values: [(consumed: Int64, end: Int64)]) -> [LostTaskRule.Partition] {
        values.enumerated().map { LostTaskRule.Partition(partition: Int32($0.offset), consumedTo: $0.element.consumed, end: $0.element.end) }
    }

    @Test("lost tasks: looked for once the group has passed a sample, by queued time, once")
    func lostAfterSample() {
        var rule = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(10))
        // Sample at 100 s: ends 10 and 20; the group is behind.
        #expect(rule.check(now: 100_000, partitions: partitions([(5, 10), (20, 20)]), queued: 3, processing: 0) == nil)
        #expect(rule.check(now: 101_000, partitions: partitions([(8, 10), (20, 20)]), queued: 3, processing: 0) == nil)
        // The group passes the 100 s sample: the first look covers every queued time.
        let first = rule.check(now: 102_000, partitions: partitions([(10, 12), (20, 20)]), queued: 3, processing: 0)
        #expect(first == LostTaskRule.Scan(from: 0, to: 90_000, cutoff: 90_000, brokerLostLog: false))
        // The 102 s and 105 s samples (ends 12, 20) are passed later: only the queued times since.
        let second = rule.check(now: 105_000, partitions: partitions([(12, 12), (20, 20)]), queued: 1, processing: 0)
        #expect(second == LostTaskRule.Scan(from: 90_000, to: 95_000, cutoff: 95_000, brokerLostLog: false))
        #expect(rule.check(now: 105_500, partitions: partitions([(12, 12), (20, 20)]), queued: 1, processing: 0) == nil, "not before the next sample")
    }

    @Test("lost tasks: after a term's first look, only the queued times since (and the tasks sent again), however long it runs")
    func neverEveryQueuedTimeAgain() {
        var rule = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(10))
        var scans: [LostTaskRule.Scan] = []
        // Two hours of checks every 2 s, the group caught up, tasks QUEUED all along.
        for step in 0..<3_600 {
            let end = Int64(step)
            if let scan = rule.check(now: 100_000 + Int64(step) * 2_000, partitions: partitions([(end, end)]), queued: 5, processing: 0) {
                scans.append(scan)
            }
        }
        #expect(scans.first == LostTaskRule.Scan(from: 0, to: 90_000, cutoff: 90_000, brokerLostLog: false), "the takeover's look")
        #expect(scans.count > 3_000)
        let whole = scans.dropFirst().filter { $0.from == 0 }
        #expect(whole.isEmpty, "looked at every queued time again at \(whole.map(\.cutoff))")
        for (previous, scan) in zip(scans, scans.dropFirst()) {
            #expect(scan.from == previous.to, "each look starts where the previous one ended")
        }
    }

    @Test("lost tasks: the tasks sent again are looked at with nothing QUEUED; a term's look at every queued time is needed only while a task is QUEUED")
    func sentAgainLooked() {
        var rule = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(10))
        let first = rule.check(now: 100_000, partitions: partitions([(4, 4)]), queued: 1, processing: 0, sentAgain: 7)
        #expect(first == LostTaskRule.Scan(from: 0, to: 90_000, cutoff: 90_000, brokerLostLog: false))
        // Ids in `resent` only (of tasks that ended since): looked at all the same.
        let next = rule.check(now: 102_000, partitions: partitions([(4, 4)]), queued: 0, processing: 0, sentAgain: 7)
        #expect(next == LostTaskRule.Scan(from: 90_000, to: 92_000, cutoff: 92_000, brokerLostLog: false))
        #expect(rule.check(now: 104_000, partitions: partitions([(4, 4)]), queued: 0, processing: 3, sentAgain: 0) == nil)
        // The look at every queued time did not finish: the next look is one again.
        rule.scanFailed(first!)
        let again = rule.check(now: 106_000, partitions: partitions([(4, 4)]), queued: 1, processing: 0, sentAgain: 0)
        #expect(again == LostTaskRule.Scan(from: 0, to: 96_000, cutoff: 96_000, brokerLostLog: false))
        // A term whose first cutoff finds nothing QUEUED: no task queued before it can be lost
        // but those sent again or written late since, which `resent` holds. No look at every
        // queued time then, nor later.
        var idle = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(10))
        #expect(idle.check(now: 100_000, partitions: partitions([(4, 4)]), queued: 0, processing: 0, sentAgain: 7) == nil)
        let later = idle.check(now: 102_000, partitions: partitions([(4, 4)]), queued: 1, processing: 0, sentAgain: 7)
        #expect(later == LostTaskRule.Scan(from: 90_000, to: 92_000, cutoff: 92_000, brokerLostLog: false))
    }

    @Test("lost tasks: a task whose message a worker still holds (running for minutes, or waiting for its retry) is never past the cutoff")
    func heldMessageNeverLost() {
        var rule = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(30))
        // The task's message is offset 5 of partition 0, sent at 100 s; its worker holds it
        // for 10 minutes, so the group's committed offset there stays at 5 while other
        // partitions and later messages move on.
        let sentAt: Int64 = 100_000
        // Before it, the group is caught up: a look up to 30 s before then.
        var latestCutoff = rule.check(now: sentAt - 1_000, partitions: partitions([(5, 5), (40, 40)]), queued: 1, processing: 0)?.cutoff ?? 0
        #expect(latestCutoff == sentAt - 31_000)
        for step in 0..<300 {
            let now = sentAt + Int64(step) * 2_000
            let end = 6 + Int64(step / 10)
            if let scan = rule.check(now: now, partitions: partitions([(5, end), (40 + Int64(step), 40 + Int64(step))]), queued: 1, processing: 0) {
                latestCutoff = max(latestCutoff, scan.cutoff)
            }
        }
        #expect(latestCutoff < sentAt, "a look reached past the held message's sending: \(latestCutoff)")
    }

    @Test("lost tasks: nothing is looked at while nothing is QUEUED, and PROCESSING tasks alone only after a lost log")
    func nothingQueued() {
        var rule = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(10))
        // Only running tasks: an ordinary look would take none of them.
        #expect(rule.check(now: 100_000, partitions: partitions([(10, 10)]), queued: 0, processing: 5) == nil)
        #expect(rule.check(now: 103_000, partitions: partitions([(10, 10)]), queued: 0, processing: 5) == nil)
        // Nothing was QUEUED at the checks before: only the queued times since are looked at.
        let scan = rule.check(now: 106_000, partitions: partitions([(10, 10)]), queued: 2, processing: 5)
        #expect(scan == LostTaskRule.Scan(from: 93_000, to: 96_000, cutoff: 96_000, brokerLostLog: false))
        // The broker restarted empty: the look after a lost log takes PROCESSING tasks too (those
        // in flight, and those queued since the looks reached).
        let lost = rule.check(now: 108_000, partitions: partitions([(0, 0)]), queued: 0, processing: 5)
        #expect(lost == LostTaskRule.Scan(from: 96_000, to: 106_000, cutoff: 106_000, brokerLostLog: true))
    }

    @Test("lost tasks: a task the broker did not take a copy of, and still PROCESSING, is offered again until it ends")
    func owedCopies() {
        var rule = LostTaskRule()
        rule.copiesRefused(["a", "b", "c"])
        #expect(rule.copiesOwed == ["a", "b", "c"])
        // a still waits (PROCESSING); b ended meanwhile (its attempt still ran); c was purged.
        #expect(rule.copiesDue([("a", .processing), ("b", .success), ("c", nil)]) == ["a"])
        #expect(rule.copiesOwed.isEmpty, "what is handed out is owed again only when refused again")
        rule.copiesRefused(["a"])
        rule.restart()
        #expect(rule.copiesOwed == ["a"], "a new term of the same worker still owes the copy")
        #expect(rule.copiesDue([("a", .queued)]) == ["a"], "a copy whose publish failed as a whole, of a task QUEUED")
    }

    private func keepingRule() -> LostTaskRule {
        LostTaskRule(
            sampleEvery: .seconds(2), slack: .seconds(10), storeEvery: .seconds(5),
            storeAgainEvery: .seconds(3600))
    }

    @Test("lost tasks: a scheduler taking over finds the log lost by the end offsets kept in Redis")
    func storedEndsShowLostLog() {
        // The whole stack restarted: the broker is empty, the new scheduler never saw the old ends.
        var rule = keepingRule()
        rule.restart(handover: .init(ends: [0: 40, 1: 7], lookedTo: 90_000))
        let scan = rule.check(now: 100_000, partitions: partitions([(0, 0), (0, 0)]), queued: 0, processing: 1)
        #expect(
            scan == LostTaskRule.Scan(from: 90_000, to: 100_000, cutoff: 100_000, brokerLostLog: true),
            "the tasks in flight and sent again, and those queued since the last scheduler's looks reached")
        // Handed no `looked_to`: every queued time.
        var unknown = keepingRule()
        unknown.restart(handover: .init(ends: [0: 40, 1: 7]))
        let whole = unknown.check(now: 100_000, partitions: partitions([(0, 0), (0, 0)]), queued: 0, processing: 1)
        #expect(whole == LostTaskRule.Scan(from: 0, to: 100_000, cutoff: 100_000, brokerLostLog: true))
        #expect(
            rule.handoverToStore(now: 100_000) == .init(ends: [0: 0, 1: 0], lookedTo: 100_000),
            "once looked through, the new ends are kept")
        // Ends at or past those kept: nothing was lost.
        var kept = keepingRule()
        kept.restart(handover: .init(ends: [0: 40, 1: 7]))
        #expect(kept.check(now: 100_000, partitions: partitions([(40, 40), (7, 9)]), queued: 0, processing: 1) == nil)
        // Nothing kept (the first run, or a week without a scheduler): no loss can be told.
        var fresh = keepingRule()
        fresh.restart(handover: .init())
        #expect(fresh.check(now: 100_000, partitions: partitions([(0, 0), (0, 0)]), queued: 0, processing: 1) == nil)
    }

    @Test("lost tasks: the partitions of a topic the broker lost are known from the ends kept or the latest check; a topic never seen has none")
    func partitionsSeen() {
        var rule = keepingRule()
        #expect(rule.partitionsSeen == nil, "not made yet: nothing to make again")
        rule.restart(handover: .init())
        #expect(rule.partitionsSeen == nil, "nothing kept: nothing to make again")
        rule.restart(handover: .init(ends: [0: 40, 1: 7]))
        #expect(rule.partitionsSeen == 2, "the whole stack restarted: the ends kept tell")
        _ = rule.check(now: 100_000, partitions: partitions([(0, 0), (0, 0), (0, 0)]), queued: 0, processing: 0)
        #expect(rule.partitionsSeen == 3, "the latest check tells")
    }

    @Test("lost tasks: the handover is kept when it changed, at most every few seconds, and again hourly")
    func handoverKept() throws {
        var rule = keepingRule()
        rule.restart(handover: .init(ends: [0: 10]))
        _ = rule.check(now: 100_000, partitions: partitions([(10, 10)]), queued: 0, processing: 0)
        let first = try #require(rule.handoverToStore(now: 100_000), "written at the first check of a term")
        #expect(first == .init(ends: [0: 10], lookedTo: 90_000))
        rule.handoverStored(first, at: 100_000)
        _ = rule.check(now: 102_000, partitions: partitions([(10, 12)]), queued: 0, processing: 0)
        #expect(rule.handoverToStore(now: 102_000) == nil, "changed, but written 2 s ago")
        _ = rule.check(now: 106_000, partitions: partitions([(12, 12)]), queued: 0, processing: 0)
        let second = try #require(rule.handoverToStore(now: 106_000))
        #expect(second == .init(ends: [0: 12], lookedTo: 96_000))
        rule.handoverStored(second, at: 106_000)
        // The group behind: no look reaches further.
        _ = rule.check(now: 200_000, partitions: partitions([(11, 12)]), queued: 0, processing: 0)
        #expect(rule.handoverToStore(now: 200_000) == nil, "unchanged")
        _ = rule.check(now: 3_706_000, partitions: partitions([(11, 12)]), queued: 0, processing: 0)
        #expect(rule.handoverToStore(now: 3_706_000) == second, "written again after an hour, so the key does not expire")
    }

    @Test("lost tasks: a term handed how far the last one looked goes on from there; one handed nothing, or a look that failed, looks at every queued time")
    func takeoverFromHandover() throws {
        var rule = keepingRule()
        _ = rule.check(now: 100_000, partitions: partitions([(10, 10)]), queued: 3, processing: 0)
        _ = rule.check(now: 102_000, partitions: partitions([(10, 10)]), queued: 3, processing: 0)
        let handover = try #require(rule.handoverToStore(now: 102_000))
        #expect(handover == .init(ends: [0: 10], lookedTo: 92_000))

        var next = keepingRule()
        next.restart(handover: handover)
        let checked = next.check(now: 110_000, partitions: partitions([(10, 10)]), queued: 3, processing: 0)
        let scan = try #require(checked)
        #expect(scan == LostTaskRule.Scan(from: 92_000, to: 100_000, cutoff: 100_000, brokerLostLog: false))
        // That look failed: what is handed over is where the last finished look reached.
        next.scanFailed(scan)
        #expect(next.handoverToStore(now: 110_000) == handover)

        // The ends alone (an older build's scheduler wrote them): a look at every queued time.
        var afterOlder = keepingRule()
        afterOlder.restart(handover: .init(ends: [0: 10]))
        let checkedAll = afterOlder.check(now: 110_000, partitions: partitions([(10, 10)]), queued: 3, processing: 0)
        let whole = try #require(checkedAll)
        #expect(whole == LostTaskRule.Scan(from: 0, to: 100_000, cutoff: 100_000, brokerLostLog: false))
        // It failed: nothing is handed over as looked at.
        afterOlder.scanFailed(whole)
        #expect(afterOlder.handoverToStore(now: 110_000) == .init(ends: [0: 10], lookedTo: nil))
    }

    @Test("lost tasks: a look after a lost log that failed is done again; the ends kept stay the old ones until it is done and every copy sent")
    func lostLogLookAgain() throws {
        var rule = keepingRule()
        _ = rule.check(now: 100_000, partitions: partitions([(50, 50)]), queued: 0, processing: 2)
        rule.handoverStored(.init(ends: [0: 50]), at: 100_000)
        let checked = rule.check(now: 102_000, partitions: partitions([(0, 0)]), queued: 0, processing: 2)
        let scan = try #require(checked)
        #expect(scan == LostTaskRule.Scan(from: 90_000, to: 100_000, cutoff: 100_000, brokerLostLog: true))
        rule.scanFailed(scan)
        #expect(rule.handoverToStore(now: 110_000) == nil, "the look is to be done again")
        #expect(rule.check(now: 104_000, partitions: partitions([(0, 0)]), queued: 0, processing: 2) == scan, "the same look again")
        rule.copiesRefused(["t1"])
        #expect(rule.handoverToStore(now: 110_000) == nil, "a copy is owed")
        _ = rule.copiesDue([("t1", .success)])
        #expect(rule.handoverToStore(now: 110_000)?.ends == [0: 0])
        #expect(rule.check(now: 112_000, partitions: partitions([(0, 0)]), queued: 0, processing: 2) == nil, "done once")
    }

    @Test("lost tasks: a look that did not finish (a shard failed) is looked at again by the next")
    func lostScanFailed() throws {
        var rule = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(10))
        let first = rule.check(now: 100_000, partitions: partitions([(10, 10)]), queued: 1, processing: 0)
        #expect(first == LostTaskRule.Scan(from: 0, to: 90_000, cutoff: 90_000, brokerLostLog: false))
        let checked = rule.check(now: 102_000, partitions: partitions([(10, 10)]), queued: 1, processing: 0)
        let second = try #require(checked)
        #expect(second == LostTaskRule.Scan(from: 90_000, to: 92_000, cutoff: 92_000, brokerLostLog: false))
        rule.scanFailed(second)
        let third = rule.check(now: 104_000, partitions: partitions([(10, 10)]), queued: 1, processing: 0)
        #expect(third == LostTaskRule.Scan(from: 90_000, to: 94_000, cutoff: 94_000, brokerLostLog: false))
    }

    /// Walks `shards` shards, each call answered by `answer` (the ids it takes and where to go on
    /// in the shard, or `nil`: it fails); the steps the walk took, as text.
    private func walk(_ shards: Int, _ answer: (ShardSweep.Call) -> (ids: [String], next: String?)?) -> [String] {
        var sweep = ShardSweep(shards: shards)
        var steps: [String] = []
        while true {
            switch sweep.next() {
            case .call(let call):
                steps.append("call \(call.shard)" + (call.cursor.isEmpty ? "" : " from \(call.cursor)"))
                if let (ids, next) = answer(call) {
                    sweep.took(ids.map { TaskMessage(id: $0, type: "t", args: [], maxAttempts: 1, queuedAt: 0) }, next: next)
                } else {
                    sweep.failed("CLUSTERDOWN")
                }
            case .publish(let tasks):
                steps.append("publish " + tasks.map(\.id).joined(separator: " "))
            case .nextRound:
                steps.append("next round")
            case .done(let failures):
                return steps + ["done" + failures.map { ", shard \($0.shard) failed: \($0.error)" }.joined()]
            }
        }
    }

    @Test("shards: one that fails is left for the next walk, after what came before it is published; the others go on")
    func failingShardDoesNotStopTheWalk() {
        let answers: [Int: (ids: [String], next: String?)] = [0: (["a"], nil), 2: (["b", "c"], nil), 3: ([], nil)]
        let steps = walk(4) { answers[$0.shard] }
        #expect(steps == ["call 0", "call 1", "publish a", "call 2", "call 3", "publish b c", "done, shard 1 failed: CLUSTERDOWN"])
        #expect(walk(3) { _ in nil } == ["call 0", "call 1", "call 2", "done" + (0..<3).map { ", shard \($0) failed: CLUSTERDOWN" }.joined()])
        #expect(walk(1) { _ in ([], nil) } == ["call 0", "done"])
    }

    @Test("shards: one with more is called again in a next round, from where it stopped; a failed one is not")
    func shardsWithMore() {
        let answers: [String: (ids: [String], next: String?)] = ["1 ": (["a"], "page-2"), "1 page-2": (["c"], nil), "2 ": (["b"], nil)]
        let steps = walk(3) { answers["\($0.shard) \($0.cursor)"] }
        #expect(steps == ["call 0", "call 1", "call 2", "publish a b", "next round", "call 1 from page-2", "publish c", "done, shard 0 failed: CLUSTERDOWN"])
    }

    @Test("lost tasks: an end offset going down means the broker lost its log")
    func brokerLostLog() {
        var rule = LostTaskRule(sampleEvery: .seconds(2), slack: .seconds(10))
        #expect(rule.check(now: 100_000, partitions: partitions([(3, 50), (4, 60)]), queued: 90, processing: 0) == nil)
        let scan = rule.check(now: 102_000, partitions: partitions([(0, 0), (0, 60)]), queued: 90, processing: 0)
        #expect(scan == LostTaskRule.Scan(from: 0, to: 100_000, cutoff: 100_000, brokerLostLog: true))
        var restarted = rule
        restarted.restart()
        #expect(restarted.check(now: 104_000, partitions: partitions([(0, 0), (0, 0)]), queued: 90, processing: 0) != nil, "a new term looks at everything")
    }
}

@Suite("Plugin schedules")
struct PluginScheduleMetadataTests {
    @Test("every, cron and schedule_args are read with the other metadata")
    func metadata() throws {
        let folder = try PluginFolder([
            "report.lua": #"return { run = function(args) return args end, cron = "*/5 * * * *", schedule_args = { "daily", 3 } }"#,
            "ping.lua": #"return { run = function() return 1 end, every = "30s" }"#,
        ])
        let report = try #require(folder.registry.info(for: "report"))
        #expect(report.loadError == nil)
        #expect(report.schedule == .cron(try CronExpression(parsing: "*/5 * * * *")))
        #expect(report.scheduleArgs == ["daily", 3])
        #expect(folder.registry.info(for: "ping")?.schedule == .every(.seconds(30)))
        #expect(folder.registry.info(for: "ping")?.scheduleArgs == [])
    }

    @Test("a bad schedule makes the plugin fail to load with the reason", arguments: [
        (#"cron = "*/5 * * *""#, "'cron' needs five fields"),
        (#"cron = "0 25 * * *""#, "'cron' hour field"),
        (#"every = "soon""#, "'every' must be a duration"),
        (#"every = 30"#, "'every' must be a duration string"),
        (#"every = "1m", cron = "* * * * *""#, "not both"),
        (#"schedule_args = { 1 }"#, "needs 'every' or 'cron'"),
        (#"every = "1m", schedule_args = { a = 1 }"#, "'schedule_args' must be a list"),
    ])
    func badSchedule(_ fields: String, _ message: String) throws {
        let folder = try PluginFolder(["tick.lua": "return { run = function() return 1 end, \(fields) }"])
        let error = try #require(folder.registry.info(for: "tick")?.loadError)
        #expect(error.message.contains(message), "\(error)")
    }
}
