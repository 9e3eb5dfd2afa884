import Foundation

/// Reads the packed task records the task scripts write (``TaskScripts/recordCoding``):
/// big-endian, a version byte, the status code, numbers (times as doubles, ms since the
/// epoch, 0 for none), then strings each behind a 4-byte length ('' for none), in the order
/// ``decode(id:_:running:)`` lists. Version 3 (written now) keeps the fields a usual task
/// never sets in a tail that is there only when one of them is set; version 2 (written by
/// earlier builds, read until its tasks expire) has every field in place.
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
        // Both versions: version, status, attempts, partition, started_at, finished_at,
        // outcome_at, expires_at, max_attempts, cancel_requested, queued_at.
        guard let version = reader.byte(), version == 2 || version == 3,
            let code = reader.byte(), Int(code) < statuses.count,
            let attempts = reader.uint32(), let partition = reader.uint32(),
            let startedAt = reader.time(), let finishedAt = reader.time(), reader.skip(16),
            let maxAttempts = reader.uint32(), reader.skip(8), let queuedAt = reader.time()
        else { return nil }
        var dueAt: Int64?
        // The tail's fields, for a version 3 record without a tail.
        var (error, errors, logs, progress): (String?, String?, String?, String?) = (nil, nil, nil, nil)
        let (worker, result, type, args, topic): (String?, String?, String?, String?, String?)
        if version == 2 {
            // requeued_at, due_at, released_at, republished_at; then worker, result, error,
            // errors, logs, progress, type, args, topic.
            guard let due = reader.tailTimesDueAt(), let strings = reader.strings(9) else { return nil }
            dueAt = due
            (worker, result, error, errors, logs, progress, type, args, topic) =
                (strings[0], strings[1], strings[2], strings[3], strings[4], strings[5], strings[6], strings[7], strings[8])
        } else {
            // worker, result, type, args, topic; then the tail, if any: requeued_at, due_at,
            // released_at, republished_at, error, errors, logs, progress.
            guard let strings = reader.strings(5) else { return nil }
            (worker, result, type, args, topic) = (strings[0], strings[1], strings[2], strings[3], strings[4])
            if !reader.atEnd {
                guard let due = reader.tailTimesDueAt(), let tail = reader.strings(4) else { return nil }
                dueAt = due
                (error, errors, logs, progress) = (tail[0], tail[1], tail[2], tail[3])
            }
        }
        return TaskRecord(
            id: id, status: statuses[Int(code)], type: type ?? "",
            args: args.flatMap { try? JSONValue(parsing: $0) } ?? .array([]),
            attempts: Int(attempts), maxAttempts: Int(maxAttempts),
            result: result.flatMap { try? JSONValue(parsing: $0) }, error: error,
            errors: TaskRecord.decodeErrors(errors),
            logs: logs.flatMap { try? JSONValue(parsing: $0) }?.arrayValue?.compactMap(\.stringValue) ?? [],
            progress: progress.flatMap { Double($0) }, worker: worker,
            partition: Int32(bitPattern: partition) >= 0 ? Int32(bitPattern: partition) : nil,
            queuedAt: queuedAt, startedAt: startedAt, finishedAt: finishedAt, dueAt: dueAt, topic: topic)
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

        var atEnd: Bool { offset >= bytes.count }

        /// The tail's four times (requeued_at, due_at, released_at, republished_at), of which
        /// a record shows only due_at; nil when the bytes end before.
        mutating func tailTimesDueAt() -> Int64?? {
            guard skip(8), let due = time(), skip(16) else { return nil }
            return due
        }

        mutating func string() -> String? {
            guard let length = uint32().map(Int.init), offset + length <= bytes.count else { return nil }
            defer { offset += length }
            return String(decoding: bytes[offset..<offset + length], as: UTF8.self)
        }

        /// `count` strings in a row, nil for each empty one; nil when the bytes end before.
        mutating func strings(_ count: Int) -> [String?]? {
            var texts: [String?] = []
            for _ in 0..<count {
                guard let text = string() else { return nil }
                texts.append(text.isEmpty ? nil : text)
            }
            return texts
        }
    }
}
