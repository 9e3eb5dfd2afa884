import Foundation
import Logging
import YADTQCore

/// Writes each log record to standard error as one JSON object per line: `time` (ISO 8601,
/// UTC, milliseconds), `level`, `command`, `worker` and `task_id` when known, `message`,
/// and any other metadata under its own key.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let command: String
    private let worker: String?
    private let write: @Sendable (String) -> Void

    /// - Parameter label: `yadtq-worker.<name>` names the command and the worker; any other
    ///   label is the command.
    public init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        if let dot = label.firstIndex(of: "."), label.hasPrefix("yadtq-worker") {
            command = String(label[..<dot])
            worker = String(label[label.index(after: dot)...])
        } else {
            command = label
            worker = nil
        }
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: JSONValue] = [
            "time": .string(timestampText(epochMilliseconds: currentEpochMilliseconds())),
            "level": .string(event.level.rawValue),
            "command": .string(command),
            "message": .string(event.message.description),
        ]
        if let worker { fields["worker"] = .string(worker) }
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { _, new in new }) {
            let name = key == "task" ? "task_id" : key
            if fields[name] == nil { fields[name] = .string(value.description) }
        }
        write(JSONValue.object(fields).jsonString + "\n")
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }
}
