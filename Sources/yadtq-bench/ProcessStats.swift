import Foundation

/// A group of processes whose CPU time and peak memory the report shows: the workers,
/// the broker, Redis, the benchmark itself (the producer).
struct WatchedGroup: Sendable {
    var name: String
    var pids: [Int32]
}

/// One reading of a process from `/proc`.
struct ProcessSample: Sendable {
    /// User plus system CPU time of every thread so far, in seconds.
    var cpuSeconds: Double
    /// Peak resident set size (`VmHWM`), in bytes.
    var peakResidentBytes: Int
}

/// Reads `/proc` (Linux only: the benchmark's host).
enum ProcFS {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    static func sample(_ pid: Int32) throws -> ProcessSample {
        let stat = try read("/proc/\(pid)/stat")
        // The command name (field 2) may hold spaces and parentheses; the fields after its
        // closing parenthesis are plain numbers, utime and stime being fields 14 and 15.
        guard let close = stat.lastIndex(of: ")") else { throw BenchFailure("unreadable /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw BenchFailure("unreadable /proc/\(pid)/stat")
        }
        return ProcessSample(
            cpuSeconds: (user + system) / ticksPerSecond,
            peakResidentBytes: (try statusKilobytes(pid, "VmHWM") ?? 0) * 1024)
    }

    /// A value in kB from `/proc/<pid>/status`, e.g. `VmHWM:    23456 kB`.
    private static func statusKilobytes(_ pid: Int32, _ field: String) throws -> Int? {
        for line in try read("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix(field + ":") {
            return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    /// The command line a process was started with, arguments separated by spaces.
    static func commandLine(_ pid: Int32) -> String {
        guard let raw = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return "?" }
        let arguments = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let program = arguments.first else { return "?" }
        return ([URL(fileURLWithPath: program).lastPathComponent] + arguments.dropFirst()).joined(separator: " ")
    }

    /// The processor model and count, and the kernel, for the report's first lines.
    static func machine() -> String {
        let model = (try? read("/proc/cpuinfo"))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown processor"
        let kernel = (try? read("/proc/sys/kernel/osrelease"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
        return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) CPUs (nproc), Linux \(kernel)"
    }

    private static func read(_ path: String) throws -> String {
        // /proc files report a size of 0, so read them to the end rather than by their size.
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BenchFailure("cannot read \(path)") }
        defer { try? handle.close() }
        return String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
    }
}

/// CPU time and peak memory of every watched group between two moments.
struct ResourceUsage {
    struct Group {
        var name: String
        var processes: Int
        var cpuSeconds: Double
        /// The largest peak RSS among the group's processes.
        var peakResidentBytes: Int
    }

    var groups: [Group]

    /// Reads every watched process now, to subtract later.
    static func baseline(_ watched: [WatchedGroup]) throws -> [[ProcessSample]] {
        try watched.map { try $0.pids.map(ProcFS.sample) }
    }

    /// The usage since `baseline`, read now.
    init(_ watched: [WatchedGroup], since baseline: [[ProcessSample]]) throws {
        groups = try zip(watched, baseline).map { group, before in
            let now = try group.pids.map(ProcFS.sample)
            return Group(
                name: group.name, processes: group.pids.count,
                cpuSeconds: zip(now, before).reduce(0) { $0 + $1.0.cpuSeconds - $1.1.cpuSeconds },
                peakResidentBytes: now.map(\.peakResidentBytes).max() ?? 0)
        }
    }
}
