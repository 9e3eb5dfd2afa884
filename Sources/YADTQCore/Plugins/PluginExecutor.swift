/// Runs tasks with the plugins of a ``PluginRegistry``, in one sandboxed Lua state.
///
/// Before each task it catches up with the registry: plugins added or changed since the last task
/// are compiled into its state and removed ones dropped, so a task always runs the code the
/// registry had when the task started. Each task runs under ``PluginLimits`` (a plugin's own
/// `timeout` may only lower the time limit); a task that hits a limit fails, and the state is
/// replaced before the next one (a limit stops a state in the middle of its code); after other
/// errors it is cleaned, or replaced if that fails.
///
/// - Important: Not thread-safe and not `Sendable`: a Lua state belongs to one thread. Create one
///   executor per worker thread, and keep `execute` off Swift's cooperative thread pool: a task
///   blocks its thread for as long as it runs (up to its timeout).
public final class PluginExecutor {
    /// Where the plugins come from.
    public let registry: PluginRegistry
    /// The limits every task runs under.
    public let limits: PluginLimits

    /// The Lua state, or why it could not be made (a memory limit too small to hold the sandbox).
    private var lua: Result<LuaState, LuaError>
    /// Task type to its compiled chunk (or load error), as of `syncedGeneration`.
    private var loaded: [String: LoadedPlugin] = [:]
    /// The registry generation `loaded` matches; nil before the first task or after a state reset.
    private var syncedGeneration: UInt64?
    /// Raised from another thread, it stops the running task with ``PluginFailure/isCancelled``
    /// (see ``TaskStopFlag``); every state this executor makes watches it.
    public let stopFlag: TaskStopFlag

    private struct LoadedPlugin {
        var revision: UInt64
        var info: PluginInfo
        var chunk: Result<Int32, PluginLoadError>
    }

    /// - Parameters:
    ///   - registry: the plugins, possibly shared with other executors.
    ///   - limits: default 30 s and 64 MiB per task.
    public init(registry: PluginRegistry, limits: PluginLimits = PluginLimits()) {
        self.registry = registry
        self.limits = limits
        let stopFlag = TaskStopFlag()
        self.stopFlag = stopFlag
        lua = Self.makeState(limits, stopFlag: stopFlag)
    }

    /// Runs one attempt of a task.
    /// - Parameters:
    ///   - type: the task type, i.e. the plugin file's name without `.lua`.
    ///   - args: the task's arguments; the plugin receives them as a Lua array.
    ///   - context: what the plugin sees as `task.id`, `task.attempt` and `task.max_attempts`.
    /// - Returns: the result, or why the attempt failed, with the attempt's logs and progress.
    ///   Unknown types and plugins that do not load fail permanently; anything else the task does
    ///   (an error, a limit, a result without a JSON form) fails only this attempt.
    public func execute(type: String, args: [JSONValue], context: TaskContext) -> PluginOutcome {
        if case .success(let current) = lua, current.isDamaged { resetState() }  // e.g. stopped while compiling
        let state: LuaState
        switch lua {
        case .success(let current): state = current
        case .failure(let error):
            return .failure(PluginFailure(message: "cannot run plugins: \(error.message)", isPermanent: false), logs: [], progress: nil)
        }
        catchUp(state)
        guard let plugin = loaded[type] else {
            return .failure(PluginFailure(message: unknownTypeMessage(type), isPermanent: true), logs: [], progress: nil)
        }
        let chunk: Int32
        switch plugin.chunk {
        case .success(let compiled): chunk = compiled
        case .failure(let loadError):
            let message = "plugin \(plugin.info.file) does not load: \(loadError) (fix the file; it is reloaded when it changes)"
            return .failure(PluginFailure(message: message, isPermanent: true), logs: [], progress: nil)
        }

        let timeout = plugin.info.timeoutSeconds.map { min(limits.timeout, .seconds($0)) } ?? limits.timeout
        let result = state.run(chunk, arguments: args, context: context, timeout: timeout)
        let logs = state.log.finished
        let progress = state.progress
        if state.isDamaged { resetState() }
        switch result {
        case .success(let value):
            return .success(value, logs: logs, progress: progress)
        case .failure(let error):
            let failure = PluginFailure(
                message: error.message, isPermanent: false, limit: error.limit, traceback: error.traceback,
                isCancelled: error.isCancelled)
            return .failure(failure, logs: logs, progress: progress)
        }
    }

    /// Brings `loaded` up to the registry's current generation.
    private func catchUp(_ state: LuaState) {
        guard registry.generation != syncedGeneration else { return }
        let catalog = registry.snapshot()
        for (type, plugin) in loaded where catalog.entries[type]?.revision != plugin.revision {
            if case .success(let chunk) = plugin.chunk { state.release(chunk) }
            loaded[type] = nil
        }
        for (type, entry) in catalog.entries where loaded[type] == nil {
            let chunk: Result<Int32, PluginLoadError>
            if let loadError = entry.info.loadError {
                chunk = .failure(loadError)
            } else {
                chunk = state.compile(entry.source, chunkName: entry.info.file)
                    .mapError { PluginLoadError(file: entry.info.file, luaMessage: $0.message) }
            }
            loaded[type] = LoadedPlugin(revision: entry.revision, info: entry.info, chunk: chunk)
        }
        syncedGeneration = catalog.generation
    }

    /// Replaces a state that could not be cleaned after a task; plugins are recompiled on the next task.
    private func resetState() {
        loaded = [:]
        syncedGeneration = nil
        lua = Self.makeState(limits, stopFlag: stopFlag)
    }

    private static func makeState(_ limits: PluginLimits, stopFlag: TaskStopFlag) -> Result<LuaState, LuaError> {
        Result { () throws(LuaError) in try LuaState(memoryLimit: limits.memoryBytes, stopFlag: stopFlag) }
    }

    private func unknownTypeMessage(_ type: String) -> String {
        let known = loaded.keys.sorted()
        let list = known.isEmpty ? "none" : known.prefix(20).joined(separator: ", ") + (known.count > 20 ? ", ..." : "")
        return "unknown task type '\(type)': there is no \(type).lua in \(registry.directory) (known types: \(list))"
    }
}
