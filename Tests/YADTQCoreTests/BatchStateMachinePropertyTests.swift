import PropertyBased
import Testing
import YADTQCore

/// Random event sequences against ``WorkerSimulation`` (messages published twice and tasks
/// taken over by other workers included): whatever happens, an offset is committed only past
/// terminal tasks, attempts never exceed the maximum, and no terminal status is written twice;
/// once the faults stop, every task ends terminal and every offset is committed.
@Suite("Batch state machine properties")
struct BatchStateMachinePropertyTests {
    enum Event: CaseIterable, Sendable {
        case publish, publishFailing, publishPermanent, publishPoison, poll, complete, wait
        case revoke, assign, crashMidBatch, redisOutage, publishCopy, takeOver
    }

    @Test("invariants hold for random event sequences")
    func invariants() async {
        // Each event with a number that picks its partition and its variant.
        let events = zip(Gen<Event>.case, Gen.int(in: 0...1_000)).array(of: 1...120)
        await propertyCheck(count: 300, input: events) { events in
            var sim = WorkerSimulation(partitions: 3, batchSize: 3, retry: RetryPolicy(baseDelay: .milliseconds(10)))
            sim.assign([0, 1, 2])
            for (event, number) in events {
                let partition = number % 3
                switch event {
                case .publish: sim.publish(to: partition)
                case .publishFailing: sim.publish(to: partition, behaviour: .init(failures: Int(number % 4)))
                case .publishPermanent: sim.publish(to: partition, behaviour: .init(permanent: true))
                case .publishPoison: sim.publishPoison(to: partition)
                case .poll: if sim.machine.membership == .member { sim.poll() }
                case .complete: sim.completeBatch()
                case .wait: sim.advance(.milliseconds(number % 50))
                case .revoke:
                    if sim.machine.assigned.contains(Int32(partition)) { sim.revoke([Int32(partition)]) }
                case .assign:
                    if sim.machine.membership == .member && !sim.machine.assigned.contains(Int32(partition)) {
                        sim.assign([Int32(partition)])
                    }
                case .crashMidBatch: sim.crash(afterBegin: number % 2 == 0)
                case .publishCopy:
                    if sim.published > 0 { sim.publishCopy(of: "t\(number % sim.published + 1)", to: partition) }
                case .takeOver:
                    if sim.published > 0 { sim.otherWorkerBegins("t\(number % sim.published + 1)") }
                case .redisOutage:
                    sim.abandonBatch(afterBegin: number % 2 == 0)
                    if sim.machine.membership == .cutOff {
                        sim.perform(sim.machine.redisReachable())
                    }
                }
                #expect(sim.violations.isEmpty, "\(sim.violations)")
            }
            // The faults stop: every partition back with this worker, the other workers finish,
            // then it drains.
            if sim.batch != nil { sim.completeBatch() }
            sim.otherWorkersFinish()
            let missing = (0..<3).map(Int32.init).filter { !sim.machine.assigned.contains($0) }
            sim.assign(missing)
            sim.drain(maxSteps: 5000)
            #expect(sim.violations.isEmpty, "\(sim.violations)")
            #expect(sim.everyTaskTerminal, "tasks left: \(sim.records.filter { !$0.value.isTerminal }.keys.sorted())")
            #expect(sim.committed == sim.partitions.map { Int64($0.count) })
        }
    }
}
