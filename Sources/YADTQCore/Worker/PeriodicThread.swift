import Foundation

/// Runs a body at once and then every interval on a dedicated thread until stopped:
/// the worker's heartbeat and plugin rescans, kept off the task loop and off Swift's
/// cooperative pool (both block on I/O).
final class PeriodicThread: @unchecked Sendable {
    // @unchecked Sendable: `started` and `loopFinished` are read and written only while
    // holding `condition`; the semaphore is thread-safe; everything else is immutable after init.
    private let condition = NSCondition()
    private var started = false
    private var loopFinished = false
    /// Signalled by ``stop()``: it ends the sleep between two runs at once. The sleep waits on
    /// it with a `DispatchTime` deadline, on the monotonic clock: a wall clock stepped back
    /// does not stretch it (a deadline given as a `Date` did, by the whole step, stopping the
    /// heartbeat and the scheduler meanwhile), and after `kill -CONT` the body runs at once.
    private let stopRequested = DispatchSemaphore(value: 0)
    private let name: String
    private let interval: Duration

    init(name: String, interval: Duration) {
        self.name = name
        self.interval = interval
    }

    /// Starts running `body`, at once and then every interval.
    func start(_ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            nameCurrentThread(name)
            loop(body)
        }
        thread.name = name
        condition.withLock { started = true }
        thread.start()
    }

    /// Returns after the thread has finished, so no run of `body` can still be in flight.
    func stop() {
        stopRequested.signal()
        condition.withLock {
            while started && !loopFinished { condition.wait() }
        }
    }

    private func loop(_ body: @Sendable () -> Void) {
        repeat { body() } while stopRequested.wait(timeout: .now() + interval.inSeconds) == .timedOut
        condition.withLock {
            loopFinished = true
            condition.broadcast()
        }
    }
}

/// Names the calling thread for the OS (`top -H`, `/proc/<pid>/task/*/comm`, debuggers),
/// cut to the 15 bytes Linux keeps. Foundation's `Thread.name` stays inside the process.
func nameCurrentThread(_ name: String) {
    #if os(Linux)
    // pthread_setname_np is not visible to Swift here; the kernel takes the name from /proc.
    let descriptor = open("/proc/thread-self/comm", O_WRONLY)
    guard descriptor >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
    #endif
}
