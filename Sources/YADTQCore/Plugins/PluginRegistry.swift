import Foundation

/// The plugins of one folder: every `<type>.lua` in it, with its metadata or its load error.
///
/// Each file is loaded once per change, in a throwaway sandboxed Lua state: compiled (text only)
/// and its top level run to read `description`, `timeout`, `max_attempts`, `args` and the
/// schedule (`every` or `cron`, `schedule_args`: see ``PluginSchedule``), without
/// running any task. ``refresh()`` rescans the folder and reloads only files whose size,
/// modification time or inode changed, so the worker can call it every second or so: a file
/// dropped into the folder becomes a task type, a changed file replaces it for tasks that start
/// afterwards, a removed file removes it. ``PluginExecutor``s follow the registry through its
/// ``generation``.
///
/// Files whose names start with `.` are ignored (editor and lock files). A file whose name is not
/// a valid task type (see ``TaskDeclaration/isValidType(_:)``, the one rule for task types) is listed with a load error.
///
/// - Important: Thread-safe. ``refresh()`` may run on one thread (a watcher) while executors on
///   other threads read the registry; refreshes are serialized, and readers never wait for a
///   plugin to load, only for the swap of the finished result.
public final class PluginRegistry: @unchecked Sendable {
    // @unchecked: the mutable state is `catalog`, read and replaced only under `lock`, and
    // `nextRevision`, used only under `refreshLock`; everything else is immutable.

    /// The folder scanned, as given.
    public let directory: String
    /// The limits a file's top level runs under while its metadata is read.
    public let loadLimits: PluginLimits

    /// One plugin as the registry last loaded it.
    struct Entry: Sendable {
        var info: PluginInfo
        /// The bytes the metadata was read from; executors compile these, not the file, so code
        /// and metadata always match.
        var source: [UInt8]
        var fingerprint: FileFingerprint
        /// Unique for each load, so an executor can tell that a type's code changed.
        var revision: UInt64
    }

    /// Everything the registry knows at one generation.
    struct Catalog: Sendable {
        var generation: UInt64 = 0
        var entries: [String: Entry] = [:]
        var scanError: String?
    }

    /// What identifies a version of a file without reading it.
    struct FileFingerprint: Hashable, Sendable {
        var size: Int
        var modified: Date
        var inode: Int
    }

    private let lock = NSLock()
    private var catalog = Catalog()
    private let refreshLock = NSLock()
    private var nextRevision: UInt64 = 1

    /// Scans `directory` once; call ``refresh()`` to pick up later changes.
    /// - Parameters:
    ///   - directory: the plugin folder, e.g. `plugins`.
    ///   - loadLimits: time and memory for running a file's top level (default 2 s, 64 MiB). A top
    ///     level only defines things; the limit bounds how long one bad file holds up a scan.
    public init(directory: String, loadLimits: PluginLimits = PluginLimits(timeout: .seconds(2))) {
        self.directory = directory
        self.loadLimits = loadLimits
        refresh()
    }

    /// Increases whenever the set of plugins or one of them changes.
    public var generation: UInt64 { lock.withLock { catalog.generation } }

    /// Every plugin file, loaded or not, sorted by task type.
    public var plugins: [PluginInfo] { snapshot().entries.values.map(\.info).sorted { $0.type < $1.type } }

    /// The plugin for a task type, if its file is in the folder.
    public func info(for type: String) -> PluginInfo? { snapshot().entries[type]?.info }

    /// Why the folder itself could not be read at the last refresh (then there are no plugins).
    public var scanError: String? { snapshot().scanError }

    /// The registry's current state, consistent across entries.
    func snapshot() -> Catalog {
        lock.withLock { catalog }
    }

    /// Rescans the folder and loads new or changed files.
    /// - Returns: whether anything changed (and ``generation`` increased).
    @discardableResult
    public func refresh() -> Bool {
        refreshLock.withLock {
            let previous = snapshot()
            var next = Catalog(generation: previous.generation)
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: directory)
            } catch {
                names = []
                next.scanError = "cannot read the plugin folder \(directory): \(error.localizedDescription)"
            }
            for name in names where name.hasSuffix(".lua") && !name.hasPrefix(".") {
                let type = String(name.dropLast(4))
                let path = (directory as NSString).appendingPathComponent(name)
                guard let fingerprint = Self.fingerprint(of: path) else { continue }  // gone or not a file
                if let known = previous.entries[type], known.fingerprint == fingerprint {
                    next.entries[type] = known
                } else {
                    next.entries[type] = load(type: type, file: name, path: path, fingerprint: fingerprint)
                }
            }
            let changed = next.scanError != previous.scanError
                || next.entries.mapValues(\.revision) != previous.entries.mapValues(\.revision)
            guard changed else { return false }
            next.generation += 1
            lock.withLock { catalog = next }
            return true
        }
    }

    private static func fingerprint(of path: String) -> FileFingerprint? {
        let resolved = (path as NSString).resolvingSymlinksInPath
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
            attributes[.type] as? FileAttributeType == .typeRegular
        else { return nil }
        return FileFingerprint(
            size: (attributes[.size] as? NSNumber)?.intValue ?? -1,
            modified: attributes[.modificationDate] as? Date ?? .distantPast,
            inode: (attributes[.systemFileNumber] as? NSNumber)?.intValue ?? -1)
    }

    /// Reads and loads one file. Runs under `refreshLock`.
    private func load(type: String, file: String, path: String, fingerprint: FileFingerprint) -> Entry {
        defer { nextRevision += 1 }
        var info = PluginInfo(type: type, file: file)
        var source: [UInt8] = []
        if !TaskDeclaration.isValidType(type) {
            info.loadError = PluginLoadError(
                file: file, line: nil,
                message: "'\(type)' is not a valid task type: rename the file to at most \(TaskDeclaration.maximumTypeLength) letters, digits, '_', '.' and '-', starting with a letter, digit or '_'")
        } else if fingerprint.size > loadLimits.memoryBytes {
            info.loadError = PluginLoadError(
                file: file, line: nil,
                message: "the file (\(fingerprint.size) bytes) is larger than the memory limit of a Lua state")
        } else if let data = FileManager.default.contents(atPath: path) {
            source = [UInt8](data)
            do throws(LuaError) {
                let metadata = try Self.readMetadata(source, file: file, limits: loadLimits)
                info.description = metadata.description
                info.timeoutSeconds = metadata.timeoutSeconds
                info.maxAttempts = metadata.maxAttempts
                info.args = metadata.args
                try Self.readSchedule(metadata, into: &info)
            } catch {
                info.loadError = PluginLoadError(file: file, luaMessage: error.message)
            }
        } else {
            info.loadError = PluginLoadError(file: file, line: nil, message: "cannot read the file (check its permissions)")
        }
        return Entry(info: info, source: source, fingerprint: fingerprint, revision: nextRevision)
    }

    /// The plugin's periodic schedule (`every` or `cron`) and `schedule_args`; a bad one makes
    /// the plugin fail to load with the reason, as any other bad metadata does.
    private static func readSchedule(_ metadata: PluginMetadata, into info: inout PluginInfo) throws(LuaError) {
        do throws(ScheduleError) {
            info.schedule = try PluginSchedule(every: metadata.every, cron: metadata.cron)
        } catch {
            throw LuaError(message: error.message)
        }
        switch metadata.scheduleArgs {
        case nil: break
        case .array(let args)?: info.scheduleArgs = args
        case .object(let members)? where members.isEmpty: break
        default: throw LuaError(message: "'schedule_args' must be a list, such as { 1, 2 }: the arguments of each scheduled task")
        }
        if metadata.scheduleArgs != nil && info.schedule == nil {
            throw LuaError(message: "'schedule_args' needs 'every' or 'cron' to say when the tasks are queued")
        }
    }

    /// Runs the file's top level in a throwaway state, under `limits`: a top level that loops or
    /// hoards memory fails to load with the limit it hit, and the watcher goes on.
    private static func readMetadata(_ source: [UInt8], file: String, limits: PluginLimits) throws(LuaError) -> PluginMetadata {
        let state = try LuaState(memoryLimit: limits.memoryBytes)
        let chunk = try state.compile(source, chunkName: file).get()
        do throws(LuaError) {
            return try state.describe(chunk, timeout: limits.timeout).get()
        } catch where error.limit != nil {
            throw LuaError(message: "its top level did not finish: \(error.message) (the top level runs when the file is loaded "
                + "and before every task: it should only define functions and settings)", traceback: error.traceback, limit: error.limit)
        }
    }
}
