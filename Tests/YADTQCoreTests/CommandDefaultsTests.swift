import Testing
import YADTQCore

/// The commands take every default from the core (``WorkerOptions``, ``LivenessRules``,
/// ``Retention``, ``ListenAddress``, ``FleetMonitor/defaultInterval``,
/// ``TaskStore/defaultListLimit``) and show it with ``Swift/Duration/flagText``; what the
/// help of the built commands prints is checked by CommandHelpTests (integration).
@Suite("Command-line defaults")
struct CommandDefaultsTests {
    @Test("flagText writes a duration in the largest whole unit, as a flag takes it")
    func flagText() {
        let cases: [(Duration, String)] = [
            (.zero, "0s"), (.milliseconds(100), "100ms"), (.milliseconds(1500), "1500ms"), (.seconds(5), "5s"),
            (.seconds(90), "90s"), (.seconds(300), "5m"), (.seconds(3600), "1h"), (.seconds(5400), "90m"),
            (.seconds(24 * 3600), "1d"), (.seconds(36 * 3600), "36h"), (.seconds(7 * 24 * 3600), "7d"),
        ]
        for (duration, text) in cases { #expect(duration.flagText == text, "\(duration)") }
    }

    @Test("every default duration a command shows reads back as itself")
    func defaultsReadBack() {
        let worker = WorkerOptions(name: "", topic: "")
        let rules = LivenessRules()
        let defaults = [
            worker.limits.timeout, worker.heartbeatInterval, worker.retry.baseDelay, worker.retry.maxDelay,
            worker.redisOutageLimit, rules.deadAfter, rules.forgetAfter, FleetMonitor.defaultInterval,
            Retention.standard.succeeded, Retention.standard.failed, ConnectionLimits().idleTimeout,
        ]
        for duration in defaults { #expect(Duration(parsing: duration.flagText) == duration, "\(duration.flagText)") }
    }

    @Test("the settings' retention without YADTQ_KEEP_* is the standard one the worker's help shows")
    func retention() throws {
        #expect(try YADTQSettings(environment: [:]).retention == Retention.standard)
        #expect(Retention.standard.succeeded.flagText == "1d" && Retention.standard.failed.flagText == "7d")
    }

    @Test("servers listen on this machine only unless told otherwise")
    func listenAddress() {
        #expect(ListenAddress().host == "127.0.0.1")
        #expect(HostAllowList.loopback.contains(ListenAddress().host))
        #expect((1...65535).contains(ListenAddress().port))
    }

    @Test("the HTTP servers' connection limits: sane defaults, and the flags' nonsense refused with the flag's name")
    func connectionLimits() {
        #expect(ConnectionLimits().problem == nil)
        #expect(ConnectionLimits().idleTimeout > .zero && ConnectionLimits().maximumConnections > 0)
        let tooShort = ConnectionLimits(idleTimeout: .milliseconds(10), maximumConnections: 10).problem
        #expect(tooShort?.contains("--idle-timeout") == true, "\(tooShort ?? "nil")")
        let none = ConnectionLimits(idleTimeout: .seconds(1), maximumConnections: 0).problem
        #expect(none?.contains("--max-connections") == true, "\(none ?? "nil")")
    }
}
