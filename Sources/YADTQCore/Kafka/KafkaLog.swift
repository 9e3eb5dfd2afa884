import CRdKafka
import Foundation
import Logging

/// librdkafka's own log lines (a broker that cannot be reached, a request that timed out),
/// forwarded to swift-log: without it librdkafka prints them to standard error in a format of
/// its own, which broke `--log-format json` and printed hundreds of lines a minute while a
/// broker was down. Repeats are logged once per 10 s (``RepeatedLines``).
public enum KafkaLog {
    /// Sends the log lines of every librdkafka client, from now on, to `logger` (the process's,
    /// with its level and format). Until then they go to a logger labelled `librdkafka`.
    public static func use(_ logger: Logger) {
        sink.use(logger)
    }

    static let sink = KafkaLogSink(logger: Logger(label: "librdkafka"))

    /// Sets the log callback on a client's configuration.
    static func configure(_ conf: OpaquePointer) {
        rd_kafka_conf_set_log_cb(conf) { _, level, facility, line in
            // librdkafka's threads call this; it must call no librdkafka function.
            KafkaLog.sink.log(
                syslogLevel: level, facility: facility.map { String(cString: $0) } ?? "",
                line: line.map { String(cString: $0) } ?? "")
        }
    }

    /// swift-log's level for one of librdkafka's lines: its syslog level's, except for the
    /// warning that a property is for the other kind of client (`... is a consumer property and
    /// will be ignored by this producer instance`), which is a debug line: every `YADTQ_KAFKA_*`
    /// override goes to every client of a process, so a worker's producer is handed the
    /// consumer's `session.timeout.ms`, and its consumer takes it.
    public static func level(syslog: Int32, facility: String, line: String) -> Logger.Level {
        let otherKind = facility == "CONFWARN"
            && (line.contains("is a consumer property and will be ignored by this producer instance")
                || line.contains("is a producer property and will be ignored by this consumer instance"))
        return otherKind ? .debug : level(syslog: syslog)
    }

    /// swift-log's level for a syslog level (librdkafka's: 0 emergency to 7 debug).
    public static func level(syslog: Int32) -> Logger.Level {
        switch syslog {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    }
}

/// The logger librdkafka's lines go to, and the repeats dropped so far.
final class KafkaLogSink: @unchecked Sendable {
    // @unchecked Sendable: librdkafka calls `log` from its own threads, any number at once;
    // `logger` and `repeats` are read and written only while holding `lock`. The logger is
    // called outside it: swift-log handlers are thread-safe.
    private let lock = NSLock()
    private var logger: Logger
    private var repeats = RepeatedLines()

    init(logger: Logger) { self.logger = logger }

    func use(_ logger: Logger) {
        lock.withLock { self.logger = logger }
    }

    func log(syslogLevel: Int32, facility: String, line: String) {
        let level = KafkaLog.level(syslog: syslogLevel, facility: facility, line: line)
        // Debug lines come only when YADTQ_KAFKA_DEBUG asks for them, and then all are wanted.
        let (logger, verdict) = lock.withLock {
            (self.logger, level == .debug ? .log(dropped: 0) : repeats.admit("\(syslogLevel)|\(facility)|\(line)", at: .now))
        }
        guard case .log(let dropped) = verdict else { return }
        let note = dropped > 0 ? " (repeated \(dropped) times since last logged)" : ""
        logger.log(level: level, "\(line)\(note)", metadata: ["librdkafka": .string(facility)])
    }
}
