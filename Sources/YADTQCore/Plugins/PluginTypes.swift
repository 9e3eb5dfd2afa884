/// The hard limits every plugin call runs under.
public struct PluginLimits: Sendable, Hashable {
    /// Longest a task may run. A plugin may declare a lower `timeout`, never a higher one.
    public var timeout: Duration
    /// Most memory one Lua state may hold: the sandbox's libraries, every compiled plugin and the
    /// running task's data together (the sandbox itself takes about 20 KiB).
    public var memoryBytes: Int

    /// - Parameters:
    ///   - timeout: default 30 s, the operator's `--timeout`.
    ///   - memoryBytes: default 64 MiB.
    public init(timeout: Duration = .seconds(30), memoryBytes: Int = 64 << 20) {
        self.timeout = timeout
        self.memoryBytes = memoryBytes
    }
}

/// What a plugin learns about the task it runs, as the fields of its `task` argument.
public struct TaskContext: Sendable, Hashable {
    /// `task.id`
    public var id: String
    /// `task.attempt`, 1 for the first attempt.
    public var attempt: Int
    /// `task.max_attempts`
    public var maxAttempts: Int

    public init(id: String, attempt: Int, maxAttempts: Int) {
        self.id = id
        self.attempt = attempt
        self.maxAttempts = maxAttempts
    }
}

/// The end of one attempt. Either way it carries what the plugin logged (`task.log`, `print`)
/// and the last fraction it passed to `task.progress`.
public enum PluginOutcome: Sendable, Hashable {
    case success(JSONValue, logs: [String], progress: Double?)
    case failure(PluginFailure, logs: [String], progress: Double?)

    /// The lines logged by the attempt, oldest first.
    public var logs: [String] {
        switch self {
        case .success(_, let logs, _), .failure(_, let logs, _): logs
        }
    }

    /// The last progress the attempt reported, if any.
    public var progress: Double? {
        switch self {
        case .success(_, _, let progress), .failure(_, _, let progress): progress
        }
    }
}

/// A sandbox limit that stopped an attempt, as the sandbox detected it: the C sandbox's reason
/// for stopping the state (`YADTQ_STOPPED_TIME`, `YADTQ_STOPPED_MEMORY`) or Lua's own
/// out-of-memory status. Never read back from a message, which a plugin's own error can imitate.
public enum PluginLimit: String, Sendable, Hashable {
    /// The time limit: the task's, or a plugin file's top level while it loads.
    case time
    /// The memory limit of the Lua state.
    case memory
}

/// Why an attempt failed.
public struct PluginFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// One line for the task record and the operator, e.g. `div.lua:3: division by zero`,
    /// `timeout after 30s`, `memory limit (64 MiB) exceeded`, `unknown task type 'x' ...`.
    public var message: String
    /// `true` when retrying cannot help: the task type is unknown or its plugin does not load.
    /// Errors raised by the plugin, time and memory limits and non-JSON results are not permanent.
    public var isPermanent: Bool
    /// The limit that stopped the attempt; `nil` when it failed otherwise (whatever its message says).
    public var limit: PluginLimit?
    /// The Lua stack traceback at the error, when there is one.
    public var traceback: String?
    /// `true` when the attempt was stopped because its task was cancelled (``TaskStopFlag``): it
    /// ends CANCELLED, never retried.
    public var isCancelled: Bool

    public init(
        message: String, isPermanent: Bool, limit: PluginLimit? = nil, traceback: String? = nil, isCancelled: Bool = false
    ) {
        self.message = message
        self.isPermanent = isPermanent
        self.limit = limit
        self.traceback = traceback
        self.isCancelled = isCancelled
    }

    public var description: String { message }
}

/// What the registry knows about one plugin file, as published to the monitor and the web page.
public struct PluginInfo: Sendable, Codable, Hashable {
    /// The task type: the file name without `.lua`.
    public var type: String
    /// The file name inside the plugin folder, e.g. `add.lua`.
    public var file: String
    /// The plugin's `description`, if it declares one.
    public var description: String?
    /// The plugin's own `timeout` in seconds, if it declares one.
    public var timeoutSeconds: Double?
    /// The plugin's `max_attempts`, if it declares one.
    public var maxAttempts: Int?
    /// The plugin's `args` text, describing the arguments it expects.
    public var args: String?
    /// Set when the file does not load; the plugin's tasks then fail with this error.
    public var loadError: PluginLoadError?
    /// The plugin's `every` or `cron`: the scheduler queues a task of this type at each tick.
    public var schedule: PluginSchedule?
    /// The plugin's `schedule_args`: the arguments of each scheduled task. Not in the plugin
    /// list published to Redis (only the scheduler needs them, from its own registry).
    public var scheduleArgs: [JSONValue] = []

    private enum CodingKeys: String, CodingKey {
        case type, file, description, timeoutSeconds, maxAttempts, args, loadError, schedule
    }

    public init(
        type: String, file: String, description: String? = nil, timeoutSeconds: Double? = nil,
        maxAttempts: Int? = nil, args: String? = nil, loadError: PluginLoadError? = nil
    ) {
        self.type = type
        self.file = file
        self.description = description
        self.timeoutSeconds = timeoutSeconds
        self.maxAttempts = maxAttempts
        self.args = args
        self.loadError = loadError
    }

    /// Whether the plugin loaded and its tasks can run.
    public var isLoaded: Bool { loadError == nil }
}

/// Why a plugin file does not load: a syntax error, an error while its top level ran, bad metadata
/// or a file name that is not a valid task type.
public struct PluginLoadError: Error, Sendable, Codable, Hashable, CustomStringConvertible {
    /// The file name inside the plugin folder.
    public var file: String
    /// The line the error is on, when Lua reported one.
    public var line: Int?
    /// What is wrong, without the file and line: at most ``maximumMessageBytes`` and a note
    /// saying it was cut.
    public var message: String

    /// The longest message kept, as for a task's error raised in the sandbox. A load error
    /// can be any size (a top level raising a string of megabytes, an `every` or `cron` of
    /// megabytes quoted back in its reason), and it goes into the log, into this worker's
    /// plugin list in Redis every 10 s, and into the error of each task of the type.
    public static let maximumMessageBytes = PluginSandbox.maximumErrorBytes

    /// Every load error is made here, so this is where its message is cut.
    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = ErrorText.trimmed(message, limit: Self.maximumMessageBytes)
    }

    /// Splits a Lua message such as `add.lua:3: unexpected symbol near 'x'` into line and message.
    init(file: String, luaMessage: String) {
        let rest = luaMessage.dropFirst(file.count + 1)
        guard luaMessage.hasPrefix(file + ":"), let colon = rest.firstIndex(of: ":"), let line = Int(rest[..<colon]) else {
            self.init(file: file, line: nil, message: luaMessage)
            return
        }
        self.init(file: file, line: line, message: String(rest[rest.index(after: colon)...].drop(while: { $0 == " " })))
    }

    /// `file:line: message`, as Lua prints errors.
    public var description: String {
        if let line { "\(file):\(line): \(message)" } else { "\(file): \(message)" }
    }
}
