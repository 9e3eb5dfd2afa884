import Logging
import Testing
import YADTQCore

@Suite("librdkafka's log lines")
struct KafkaLogTests {
    let start = ContinuousClock.now

    @Test("a line is logged once per interval; the next after it says how many were dropped")
    func repeatsDropped() {
        var repeats = RepeatedLines(interval: .seconds(10))
        let line = "Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"
        #expect(repeats.admit(line, at: start) == .log(dropped: 0))
        #expect(repeats.admit(line, at: start + .seconds(1)) == .drop)
        #expect(repeats.admit(line, at: start + .seconds(9)) == .drop)
        #expect(repeats.admit(line, at: start + .seconds(10)) == .log(dropped: 2))
        #expect(repeats.admit(line, at: start + .seconds(11)) == .drop)
    }

    @Test("lines that differ only in their digits are one kind; other lines are not held back by it")
    func kinds() {
        var repeats = RepeatedLines(interval: .seconds(10))
        #expect(repeats.admit("failed (after 0ms in state CONNECT)", at: start) == .log(dropped: 0))
        #expect(repeats.admit("failed (after 12ms in state CONNECT)", at: start) == .drop)
        #expect(repeats.admit("1/1 brokers are down", at: start) == .log(dropped: 0))
        #expect(repeats.admit("failed (after 3ms in state APIVERSION_QUERY)", at: start) == .log(dropped: 0))
    }

    @Test("lines that never repeat do not grow what it remembers past its capacity")
    func bounded() {
        var repeats = RepeatedLines(interval: .seconds(10), capacity: 2)
        for word in ["alpha", "beta", "gamma", "delta"] {
            #expect(repeats.admit(word, at: start) == .log(dropped: 0))
        }
        // Full of kinds still in their interval: all were forgotten to make room, and the last
        // one is remembered.
        #expect(repeats.admit("delta", at: start) == .drop)
    }

    @Test("syslog levels map to swift-log's")
    func levels() {
        #expect((0...7).map(KafkaLog.level(syslog:)) == [.critical, .critical, .critical, .error, .warning, .notice, .info, .debug])
    }

    @Test("a property meant for the other kind of client is a debug line, as every override goes to every client; other warnings stay")
    func otherKindOfClient() {
        let line = { (property: String, kind: String, client: String) in
            "[thrd:app]: Configuration property \(property) is a \(kind) property and will be ignored by this \(client) instance"
        }
        #expect(KafkaLog.level(syslog: 4, facility: "CONFWARN", line: line("session.timeout.ms", "consumer", "producer")) == .debug)
        #expect(KafkaLog.level(syslog: 4, facility: "CONFWARN", line: line("linger.ms", "producer", "consumer")) == .debug)
        let other = "[thrd:app]: Configuration property queue.buffering.max.ms is deprecated"
        #expect(KafkaLog.level(syslog: 4, facility: "CONFWARN", line: other) == .warning)
        #expect(KafkaLog.level(syslog: 3, facility: "FAIL", line: line("x", "consumer", "producer")) == .error)
    }
}
