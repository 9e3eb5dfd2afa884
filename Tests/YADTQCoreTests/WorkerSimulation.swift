import YADTQCore

/// A worker's world without services, for driving ``BatchStateMachine``: a topic of a few
/// partitions with its committed offsets, Redis's task records with the task scripts'
/// rules, and plugins whose behaviour each task names. Every action the machine returns is
/// performed here as the real worker performs it, and the rules' invariants are checked.
struct WorkerSimulation {
    /// How a task's plugin behaves: fails `failures` times, then succeeds (or fails for
    /// good when `permanent`).
    struct Behaviour: Hashable {
        var failures = 0
        var permanent = false
    }

    enum Status: Equatable { case queued, processing, success, failed, cancelled }

    struct Record: Equatable {
        var status = Status.queued
        var attempts = 0
        var maxAttempts: Int
        var terminalWrites = 0
        /// Whether another worker took an attempt: the outcome of this one's may then be refused.
        var takenOver = false
        var isTerminal: Bool { status == .success || status == .failed || status == .cancelled }
    }

    var partitions: [[ConsumedMessage]]
    var committed: [Int64]
    /// The next offset the consumer fetches, per assigned partition.
    var position: [Int32: Int64] = [:]
    var paused: Set<Int32> = []
    var records: [String: Record] = [:]
    var behaviours: [String: Behaviour] = [:]
    var recordedMarkers: [String: Set<Int32>] = [:]
    var machine: BatchStateMachine
    var batch: TaskBatch?
    var exited = false
    var left = false
    var now = ContinuousClock.now
    var violations: [String] = []
    var published = 0
    /// Whether the broker loses the commits sent without waiting for its answer.
    var losesCommits = false
    /// Attempts another worker began (it got a copy of the message) and has not finished.
    var othersRunning: [String: Int] = [:]

    init(partitions: Int, batchSize: Int = 4, retry: RetryPolicy = RetryPolicy()) {
        self.partitions = Array(repeating: [], count: partitions)
        committed = Array(repeating: 0, count: partitions)
        machine = BatchStateMachine(
            configuration: .init(topic: "t", batchSize: batchSize, retry: retry, statusCheckInterval: .seconds(1)))
    }

    // MARK: - The topic

    @discardableResult
    mutating func publish(to partition: Int, behaviour: Behaviour = Behaviour(), maxAttempts: Int = 3) -> String {
        published += 1
        let id = "t\(published)"
        let message = TaskMessage(id: id, type: "work", args: [], maxAttempts: maxAttempts, queuedAt: 0)
        append(message.encoded(), to: partition)
        records[id] = Record(maxAttempts: maxAttempts)
        behaviours[id] = behaviour
        return id
    }

    /// Publishes the message of task `id` again (as the scheduler does for a task it thinks lost).
    mutating func publishCopy(of id: String, to partition: Int) {
        guard let record = records[id] else { return }
        let message = TaskMessage(id: id, type: "work", args: [], maxAttempts: record.maxAttempts, queuedAt: 0)
        append(message.encoded(), to: partition)
    }

    mutating func publishPoison(to partition: Int) {
        append(Array("not json".utf8), to: partition)
    }

    mutating func publishEnd(to partition: Int, marker: String = "m1") {
        append(TopicMessage.endMarker(marker), to: partition)
    }

    private mutating func append(_ value: [UInt8], to partition: Int) {
        let offset = Int64(partitions[partition].count)
        partitions[partition].append(ConsumedMessage(partition: Int32(partition), offset: offset, value: value))
    }

    // MARK: - Events

    mutating func assign(_ assigned: [Int32]) {
        for partition in assigned { position[partition] = committed[Int(partition)] }
        perform(machine.partitionsAssigned(assigned))
    }

    mutating func revoke(_ revoked: [Int32], lost: Bool = false) {
        perform(machine.partitionsRevoked(revoked, lost: lost))
        for partition in revoked {
            position[partition] = nil
            paused.remove(partition)
        }
    }

    /// One poll of up to `limit` messages.
    mutating func poll(limit: Int? = nil) {
        var messages: [ConsumedMessage] = []
        let limit = limit ?? machine.pollLimit
        for partition in position.keys.sorted() where !paused.contains(partition) {
            while messages.count < limit, let next = position[partition], next < partitions[Int(partition)].count {
                messages.append(partitions[Int(partition)][Int(next)])
                position[partition] = next + 1
            }
        }
        perform(machine.polled(messages, now: now))
    }

    mutating func advance(_ duration: Duration) {
        now += duration
    }

    /// Runs the batch in flight to its end, against the simulated Redis and plugins;
    /// `whileRunning` happens elsewhere while its attempts run.
    mutating func completeBatch(whileRunning: (inout WorkerSimulation) -> Void = { _ in }) {
        guard var work = batch else { return }
        batch = nil
        if work.tasks.isEmpty {
            work.finishedWithoutTasks(now: now)
        } else {
            let runnable = work.begun(begin(work.tasks))
            whileRunning(&self)
            let results = runnable.map(run)
            let record = work.ran(results, now: now)
            work.finished(written: finish(record.outcomes))
        }
        if !work.statusChecks.isEmpty { work.statusesRead(work.statusChecks.map { status(of: $0) }) }
        for (marker, partitions) in work.markersReached() {
            for partition in partitions { checkTasksTerminal(before: marker, on: partition) }
            recordedMarkers[marker, default: []].formUnion(partitions)
        }
        work.markersRecorded()
        perform(machine.batchFinished(work.result, now: now))
    }

    /// The batch in flight began its tasks in Redis, then Redis became unreachable for good.
    mutating func abandonBatch(afterBegin: Bool) {
        guard let work = batch else { return }
        batch = nil
        if afterBegin && !work.tasks.isEmpty { _ = begin(work.tasks) }
        perform(machine.batchAbandoned())
    }

    /// The worker dies (kill -9) after its batch in flight began in Redis; a new one starts
    /// with the same partitions, from the committed offsets.
    mutating func crash(afterBegin: Bool) {
        if let work = batch, afterBegin, !work.tasks.isEmpty { _ = begin(work.tasks) }
        batch = nil
        let assigned = position.keys.sorted()
        position = [:]
        paused = []
        exited = false
        left = false
        machine = BatchStateMachine(configuration: machine.configuration)
        assign(assigned)
    }

    /// Another worker, which read another copy of task `id`'s message, begins an attempt:
    /// the attempt this worker may be running is stale from now on.
    mutating func otherWorkerBegins(_ id: String) {
        guard var record = records[id], !record.isTerminal else { return }
        defer { records[id] = record }
        record.takenOver = true
        if record.attempts >= record.maxAttempts {
            record.status = .failed
            record.terminalWrites += 1
            return
        }
        record.attempts += 1
        record.status = .processing
        othersRunning[id] = record.attempts
    }

    /// The other workers record their attempts' success (Redis refuses the stale ones).
    mutating func otherWorkersFinish() {
        for (id, attempt) in othersRunning {
            guard var record = records[id], !record.isTerminal, record.attempts == attempt else { continue }
            record.status = .success
            record.terminalWrites += 1
            records[id] = record
        }
        othersRunning = [:]
    }

    mutating func stop() {
        perform(machine.stopRequested(now: now))
    }

    // MARK: - Redis and the plugins

    /// Like the `begin` script, a task named twice in one call is begun once: both get the
    /// same answer.
    mutating func begin(_ tasks: [BatchTask]) -> [AttemptDecision] {
        var decided: [String: AttemptDecision] = [:]
        return tasks.map { task in
            if let decision = decided[task.message.id] { return decision }
            let decision = begin(task)
            decided[task.message.id] = decision
            return decision
        }
    }

    private mutating func begin(_ task: BatchTask) -> AttemptDecision {
        var record = records[task.message.id] ?? Record(maxAttempts: task.message.maxAttempts)
        defer { records[task.message.id] = record }
        if record.isTerminal { return .alreadyTerminal }
        // The other worker is alive and its attempt may still run (see AttemptElsewhere).
        if othersRunning[task.message.id] != nil { return .runningElsewhere(RunningAttempt(worker: "other", startedAt: 0)) }
        if record.attempts >= record.maxAttempts { return .exhausted(attempts: record.attempts) }
        record.attempts += 1
        record.status = .processing
        return .run(attempt: record.attempts)
    }

    func status(of id: String) -> TaskStatus? {
        switch records[id]?.status {
        case .queued: .queued
        case .processing: .processing
        case .success: .success
        case .failed: .failed
        case .cancelled: .cancelled
        case nil: nil
        }
    }

    func run(_ task: BatchTask) -> PluginOutcome {
        let behaviour = behaviours[task.message.id] ?? Behaviour()
        if behaviour.permanent {
            return .failure(PluginFailure(message: "permanent", isPermanent: true), logs: [], progress: nil)
        }
        if task.attempt <= behaviour.failures {
            return .failure(PluginFailure(message: "attempt \(task.attempt) failed", isPermanent: false), logs: [], progress: nil)
        }
        return .success(.int(Int64(task.attempt)), logs: [], progress: nil)
    }

    mutating func finish(_ outcomes: [AttemptOutcome]) -> [Bool] {
        outcomes.map { outcome in
            guard var record = records[outcome.id] else { return false }
            defer { records[outcome.id] = record }
            if record.isTerminal {
                if outcome.kind != .retry && !record.takenOver { violations.append("\(outcome.id): a terminal status was written again") }
                return false
            }
            guard outcome.attempt == record.attempts else { return false }
            switch outcome.kind {
            case .success:
                record.status = .success
                record.terminalWrites += 1
            case .failed:
                record.status = .failed
                record.terminalWrites += 1
            case .cancelled:
                record.status = .cancelled
                record.terminalWrites += 1
            case .retry: break
            }
            return true
        }
    }

    // MARK: - Actions

    mutating func perform(_ actions: [BatchStateMachine.Action]) {
        for action in actions {
            switch action {
            case .startBatch(let work):
                if batch != nil { violations.append("a batch started while one was in flight") }
                batch = work
            case .pause(let list): paused.formUnion(list)
            case .resume(let list): paused.subtract(list)
            case .commit(let offsets, let synchronous):
                if losesCommits && !synchronous { continue }
                for (partition, offset) in offsets { commit(partition, offset) }
            case .leaveGroup:
                left = true
                let assigned = position.keys.sorted()
                position = [:]
                paused = []
                if !assigned.isEmpty { perform(machine.partitionsRevoked(assigned)) }
            case .joinGroup:
                left = false
            case .exit:
                exited = true
            }
        }
        checkInvariants()
    }

    private mutating func commit(_ partition: Int32, _ offset: Int64) {
        let log = partitions[Int(partition)]
        for message in log.prefix(Int(offset)) where !isSettled(message) {
            violations.append("offset \(offset) of partition \(partition) committed past unfinished offset \(message.offset)")
        }
        committed[Int(partition)] = offset
    }

    /// Whether the message's task is terminal in Redis (or its end marker recorded).
    func isSettled(_ message: ConsumedMessage) -> Bool {
        switch try? TopicMessage.decode(message.value) {
        case .task(let task): records[task.id]?.isTerminal ?? false
        case .end(let marker): recordedMarkers[marker]?.contains(message.partition) ?? false
        case nil: records["poison-t-\(message.partition)-\(message.offset)"]?.isTerminal ?? false
        }
    }

    /// Rule: a marker is reached only once every task before it on its partition is terminal.
    private mutating func checkTasksTerminal(before marker: String, on partition: Int32) {
        let log = partitions[Int(partition)]
        guard let at = log.firstIndex(where: { (try? TopicMessage.decode($0.value)) == .end(marker: marker) }) else { return }
        for message in log.prefix(at) where !isSettled(message) {
            violations.append("marker \(marker) of partition \(partition) reached before offset \(message.offset) was terminal")
        }
    }

    private mutating func checkInvariants() {
        for (id, record) in records {
            if record.attempts > record.maxAttempts {
                violations.append("\(id): attempt \(record.attempts) of \(record.maxAttempts)")
            }
            if record.terminalWrites > 1 { violations.append("\(id): terminal status written \(record.terminalWrites) times") }
        }
    }

    /// Polls and completes batches (advancing time for retries) until nothing is left.
    mutating func drain(maxSteps: Int = 500) {
        for _ in 0..<maxSteps {
            if batch != nil {
                completeBatch()
                continue
            }
            poll()
            if batch == nil {
                guard let due = machine.nextDue else {
                    if position.allSatisfy({ $0.value >= partitions[Int($0.key)].count }) { return }
                    continue
                }
                if due > now { now = due }
            }
        }
    }

    var everyTaskTerminal: Bool { records.values.allSatisfy(\.isTerminal) }
}
