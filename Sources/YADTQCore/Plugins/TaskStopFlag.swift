import CLuaSandbox

/// A flag that another thread raises to stop the task running in a Lua state: the sandbox
/// checks it wherever it checks the deadline (the hook at every call and every 100
/// instructions or fewer, the allocator, `task.sleep` every 50 ms), and stops the code the same way,
/// for good, with a cancellation error instead of a timeout. This is how a task cancelled
/// while it runs ends within a second, whatever its code does.
///
/// The flag stays raised until lowered: whoever hands tasks to the state lowers it before each
/// one (``ExecutorPool``), under the same lock it raises it with, so a late stop request
/// never reaches the next task.
public final class TaskStopFlag: @unchecked Sendable {
    // @unchecked Sendable: `storage` is only read and written through the C sandbox's atomic
    // accessors (yadtq_request_stop, yadtq_clear_stop, and the hook's atomic load).
    let storage: UnsafeMutablePointer<Int32>

    public init() {
        storage = .allocate(capacity: 1)
        storage.initialize(to: 0)
    }

    deinit {
        storage.deallocate()
    }

    /// Stops the running task (if any) at its next check.
    public func raise() {
        yadtq_request_stop(storage)
    }

    /// Lets the next task run.
    public func lower() {
        yadtq_clear_stop(storage)
    }
}
