import Foundation

/// Reads the packed task records the task scripts write (the `FORMAT` of
/// ``TaskScripts/recordCoding``): big-endian, a version byte (2), the status code, numbers
/// (times as doubles, ms since the epoch, 0 for none), then nine strings each behind a 4-byte
/// length ('' for none), in the order ``decode(id:_:)`` lists.
enum TaskRecordCoding {
    /// The status codes, in the order the scripts number them.
    static let statuses: [TaskStatus] = [.queued, .processing, .success, .failed, .cancelled, .scheduled]

    /// The record of task `id` from its packed bytes and, for a task in flight, its entry in
    /// `running` (``TaskScripts/runningEntry``: attempt, partition, started_at, then the
    /// worker), whose values stand for the record's; `nil` when they are not a record of a
    /// version this build reads.
    static func decode(id: String, _ bytes: [UInt8], running entry: [UInt8]? = nil) -> TaskRecord? {
        guard let record = decodeStored(id: id, bytes) else { return nil }
        guard let entry else { return record }
        var reader = Reader(bytes: entry)
        guard let attempt = reader.uint32(), let partition = reader.uint32(), let startedAt = reader.time() else {
            return record
        }
        var merged = record
        merged.status = .processing
        merged.attempts = Int(attempt)
        let signedPartition = Int32(bitPattern: partition)
        merged.partition = signedPartition >= 0 ? signedPartition : nil
        merged.startedAt = startedAt
        merged.worker = String(decoding: entry[reader.offset...], as: UTF8.self)
        return merged
    }

    private static func decodeStored(id: String, _ bytes: [UInt8]) -> TaskRecord? {
        var reader = Reader(bytes: bytes)
        // version, status, attempts, partition, started_at, finished_at, outcome_at,
        // expires_at, max_attempts, cancel_requested, queued_at, requeued_at, due_at,
        // released_at, republished_at; then worker, result, error, errors, logs, progress,
        // type, args, topic.
        guard let version = reader.byte(), version == 2,
            let code = reader.byte(), Int(code) < statuses.count,
            let attempts = reader.uint32(), let partition = reader.uint32(),
            let startedAt = reader.time(), let finishedAt = reader.time(), reader.skip(16),
            let maxAttempts = reader.uint32(), reader.skip(8), let queuedAt = reader.time(), reader.skip(8),
            let dueAt = reader.time(), reader.skip(16)
        else { return nil }
        var strings: [String?] = []
        for _ in 0..<9 {
            guard let text = reader.string() else { return nil }
            strings.append(text.isEmpty ? nil : text)
        }
        let (worker, result, error, errors, logs, progress, type, args) =
            (strings[0], strings[1], strings[2], strings[3], strings[4], strings[5], strings[6], strings[7])
        return TaskRecord(
            id: id, status: statuses[Int(code)], type: type ?? "",
            args: args.flatMap { try? JSONValue(parsing: $0) } ?? .array([]),
            attempts: Int(attempts), maxAttempts: Int(maxAttempts),
            result: result.flatMap { try? JSONValue(parsing: $0) }, error: error,
            errors: TaskRecord.decodeErrors(errors),
            logs: logs.flatMap { try? JSONValue(parsing: $0) }?.arrayValue?.compactMap(\.stringValue) ?? [],
            progress: progress.flatMap { Double($0) }, worker: worker,
            partition: Int32(bitPattern: partition) >= 0 ? Int32(bitPattern: partition) : nil,
            queuedAt: queuedAt, startedAt: startedAt, finishedAt: finishedAt, dueAt: dueAt)
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func uint32() -> UInt32? {
            guard offset + 4 <= bytes.count else { return nil }
            defer { offset += 4 }
            return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
        }

        /// A time: ms since the epoch as a double; `.some(nil)` for none (0).
        mutating func time() -> Int64?? {
            guard offset + 8 <= bytes.count else { return nil }
            defer { offset += 8 }
            let value = Double(bitPattern: bytes[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) })
            return .some(value > 0 ? Int64(value) : nil)
        }

        mutating func skip(_ count: Int) -> Bool {
            guard offset + count <= bytes.count else { return false }
            offset += count
            return true
        }

        mutating func string() -> String? {
            guard let length = uint32().map(Int.init), offset + length <= bytes.count else { return nil }
            defer { offset += length }
            return String(decoding: bytes[offset..<offset + length], as: UTF8.self)
        }
    }
}
