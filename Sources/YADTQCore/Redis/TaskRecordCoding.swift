import Foundation

/// Reads the packed task records the task scripts write (the `FORMAT` of
/// ``TaskScripts/recordCoding``): big-endian, a version byte, the status code, attempts,
/// max_attempts, partition, ten times as doubles (ms since the epoch, 0 for none), then
/// nine strings each behind a 4-byte length ('' for none).
enum TaskRecordCoding {
    /// The status codes, in the order the scripts number them.
    static let statuses: [TaskStatus] = [.queued, .processing, .success, .failed, .cancelled, .scheduled]

    /// The record of task `id` from its packed bytes; `nil` when they are not a record of a
    /// version this build reads.
    static func decode(id: String, _ bytes: [UInt8]) -> TaskRecord? {
        var reader = Reader(bytes: bytes)
        guard let version = reader.byte(), version == 1,
            let code = reader.byte(), Int(code) < statuses.count,
            let attempts = reader.uint32(), let maxAttempts = reader.uint32(), let partition = reader.uint32()
        else { return nil }
        var times: [Int64?] = []
        for _ in 0..<10 {
            guard let time = reader.double() else { return nil }
            times.append(time > 0 ? Int64(time) : nil)
        }
        var strings: [String?] = []
        for _ in 0..<9 {
            guard let text = reader.string() else { return nil }
            strings.append(text.isEmpty ? nil : text)
        }
        // times: queued, started, finished, outcome, cancel requested, requeued, expires, due,
        // released, republished. strings: type, worker, args, result, error, errors, logs,
        // progress, topic.
        return TaskRecord(
            id: id, status: statuses[Int(code)], type: strings[0] ?? "",
            args: strings[2].flatMap { try? JSONValue(parsing: $0) } ?? .array([]),
            attempts: Int(attempts), maxAttempts: Int(maxAttempts),
            result: strings[3].flatMap { try? JSONValue(parsing: $0) }, error: strings[4],
            errors: TaskRecord.decodeErrors(strings[5]),
            logs: strings[6].flatMap { try? JSONValue(parsing: $0) }?.arrayValue?.compactMap(\.stringValue) ?? [],
            progress: strings[7].flatMap { Double($0) }, worker: strings[1],
            partition: Int32(bitPattern: partition) >= 0 ? Int32(bitPattern: partition) : nil,
            queuedAt: times[0], startedAt: times[1], finishedAt: times[2], dueAt: times[7])
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

        mutating func double() -> Double? {
            guard offset + 8 <= bytes.count else { return nil }
            defer { offset += 8 }
            return Double(bitPattern: bytes[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) })
        }

        mutating func string() -> String? {
            guard let length = uint32().map(Int.init), offset + length <= bytes.count else { return nil }
            defer { offset += length }
            return String(decoding: bytes[offset..<offset + length], as: UTF8.self)
        }
    }
}
