import Logging
import Testing
import YADTQCore

@Suite("Setting rules")
struct SettingsRulesTests {
    @Test("--memory-limit is 1 MiB to 1 TiB, so that it never overflows when counted in bytes")
    func memoryLimit() throws {
        for valid in [1, 64, 1 << 20] { #expect(WorkerOptions.problem(withMemoryLimitMiB: valid) == nil, "\(valid)") }
        for invalid in [0, -1, (1 << 20) + 1, 9_000_000_000_000, Int.max] {
            let problem = try #require(WorkerOptions.problem(withMemoryLimitMiB: invalid), "\(invalid)")
            #expect(problem.contains("give 1 to 1048576 MiB (1 TiB)"), "\(problem)")
        }
        let (bytes, overflow) = WorkerOptions.memoryLimitMiB.upperBound.multipliedReportingOverflow(by: 1024 * 1024)
        #expect(!overflow && bytes == 1 << 40)
    }

    @Test("a heartbeat interval under 100ms, or a Redis outage limit of 0, is refused")
    func intervals() throws {
        for short: Duration in [.zero, .milliseconds(1), .milliseconds(99)] {
            let problem = try #require(WorkerOptions.problem(withHeartbeatInterval: short))
            #expect(problem.contains("give at least 100ms"), "\(problem)")
            #expect(RefreshInterval.problem(with: short) == problem, "the monitor's --interval shares the rule")
        }
        #expect(WorkerOptions.problem(withHeartbeatInterval: .milliseconds(100)) == nil)
        #expect(WorkerOptions.problem(withHeartbeatInterval: WorkerOptions(name: "w", topic: "t").heartbeatInterval) == nil)
        #expect(WorkerOptions.problem(withRedisOutageLimit: .zero)?.contains("more than 0") == true)
        #expect(WorkerOptions.problem(withRedisOutageLimit: .milliseconds(1)) == nil)
        #expect(WorkerOptions.problem(withRedisOutageLimit: WorkerOptions(name: "w", topic: "t").redisOutageLimit) == nil)
    }

    @Test("a worker name is 1 to 200 printable ASCII characters without whitespace, like a task id")
    func workerNames() throws {
        for valid in ["w1", "worker-7.host_a", "pod/abc-123", String(repeating: "x", count: 200)] {
            #expect(WorkerOptions.problem(withName: valid) == nil, "\(valid)")
        }
        let cases: [(name: String, says: String)] = [
            ("", "the worker name is empty"),
            ("w 1", "has ' ' in it"),
            ("w\n", "has U+A in it"),
            ("\u{1B}[2J", "has U+1B in it"),
            ("wörker", "has U+F6 in it"),
            (String(repeating: "x", count: 201), "is 201 characters long"),
        ]
        for (name, says) in cases {
            let problem = try #require(WorkerOptions.problem(withName: name), "\(name)")
            #expect(problem.contains(says), "\(problem)")
            #expect(problem.contains("a worker name is 1 to 200 printable ASCII characters without whitespace"))
            #expect(!problem.contains("\u{1B}"))
        }
    }

    @Test("YADTQ_WEB_TOKEN with whitespace at its ends or control characters is refused without showing it")
    func webTokens() throws {
        #expect(try WebToken.read(from: [:]) == nil)
        #expect(try WebToken.read(from: ["YADTQ_WEB_TOKEN": ""]) == nil)
        #expect(try WebToken.read(from: ["YADTQ_WEB_TOKEN": "s3cret-token"]) == "s3cret-token")
        #expect(try WebToken.read(from: ["YADTQ_WEB_TOKEN": "two words"]) == "two words")
        let cases: [(token: String, says: String)] = [
            ("s3cret\n", "ends with a newline"),
            ("s3cret\r\n", "ends with a newline"),
            ("s3cret ", "ends with a space"),
            ("\ts3cret", "starts with a tab"),
            ("s3c\u{7}ret", "has a control character (U+7)"),
            ("s3c\u{200E}ret", "has a control character (U+200E)"),
        ]
        for (token, says) in cases {
            let error = #expect(throws: YADTQError.self, "\(token)") { try WebToken.read(from: ["YADTQ_WEB_TOKEN": token]) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("YADTQ_WEB_TOKEN \(says)"), "\(text)")
            #expect(!text.contains("s3c"), "the token is never shown")
        }
    }

    @Test("a flag's value replaces an invalid environment variable, and a refusal names the flag")
    func flagsBeatEnvironment() throws {
        let environment = [
            "YADTQ_REDIS": "bogus", "YADTQ_NAMESPACE": "{x}", "YADTQ_TOPIC": "my tasks", "YADTQ_KEEP_FAILED": "soon",
        ]
        let settings = try YADTQSettings(
            environment: environment,
            flags: [
                "YADTQ_REDIS": "redis://127.0.0.1:6380/1", "YADTQ_NAMESPACE": "app", "YADTQ_TOPIC": "jobs",
                "YADTQ_KEEP_FAILED": "1h",
            ])
        #expect(settings.redis.port == 6380 && settings.redis.database == 1)
        #expect(settings.namespace == "app" && settings.topic == "jobs" && settings.retention.failed == .seconds(3600))
        let redis = #expect(throws: YADTQError.self) {
            try YADTQSettings(environment: [:], flags: ["YADTQ_REDIS": "redis://:s3cret@h:x/0"])
        }
        #expect(redis.map { "\($0)" }?.contains("--redis: 'redis://:***@h:x/0' is not a Redis URL") == true)
        let environmentRedis = #expect(throws: YADTQError.self) { try YADTQSettings(environment: ["YADTQ_REDIS": "bogus"]) }
        #expect(environmentRedis.map { "\($0)" }?.contains("YADTQ_REDIS: 'bogus' is not a Redis URL") == true)
        let keep = #expect(throws: YADTQError.self) {
            try YADTQSettings(environment: [:], flags: ["YADTQ_KEEP_SUCCEEDED": "0x10s"])
        }
        #expect(keep.map { "\($0)" }?.contains("--keep-succeeded='0x10s' is not a duration") == true)
        let namespace = #expect(throws: YADTQError.self) {
            try YADTQSettings(environment: [:], flags: ["YADTQ_NAMESPACE": "a b"])
        }
        #expect(namespace.map { "\($0)" }?.contains("--namespace: the namespace 'a b'") == true)
    }

    @Test("log levels and formats in any case; an unknown one is refused with the known ones")
    func logSettings() throws {
        #expect(try LogSettings.level(parsing: "DEBUG", source: "YADTQ_LOG_LEVEL") == .debug)
        #expect(try LogSettings.level(parsing: "Warning", source: "--log-level") == .warning)
        #expect(try LogSettings.isJSON(parsing: "JSON", source: "--log-format"))
        #expect(try !LogSettings.isJSON(parsing: "text", source: "--log-format"))
        let level = #expect(throws: YADTQError.self) { try LogSettings.level(parsing: "verbose", source: "--log-level") }
        #expect(
            level.map { "\($0)" }?.contains(
                "--log-level='verbose' is not a log level. Give one of trace, debug, info, notice, warning, error, critical")
                == true)
        let format = #expect(throws: YADTQError.self) { try LogSettings.isJSON(parsing: "xml", source: "YADTQ_LOG_FORMAT") }
        #expect(format.map { "\($0)" }?.contains("YADTQ_LOG_FORMAT='xml' is not a log format. Give text or json") == true)
    }

    @Test("an allowed host with a scheme or a path is refused, naming where it came from")
    func allowedHostPatterns() throws {
        #expect(
            try HostAllowList.patterns(parsing: "tasks.example.com:8080, .corp.example,::2,[::3]:80,*,10.0.0.5:1")
                == ["tasks.example.com:8080", ".corp.example", "::2", "[::3]:80", "*", "10.0.0.5:1"])
        for (pattern, says) in [
            ("https://q.example.com", "'https://q.example.com' has a scheme"),
            ("q.example.com/tasks", "'q.example.com/tasks' is not a host name (it has a path, query or user)"),
            ("q.example.com:http", "'q.example.com:http' is not a host name"),
            ("*.example.com", "'*.example.com' is not a host name"),
        ] {
            let error = #expect(throws: YADTQError.self, "\(pattern)") {
                try HostAllowList.patterns(parsing: "a.example," + pattern, source: "YADTQ_WEB_ALLOWED_HOSTS")
            }
            #expect(error.map { "\($0)" }?.contains("YADTQ_WEB_ALLOWED_HOSTS: \(says)") == true, "\(error.map { "\($0)" } ?? "")")
        }
    }
}

@Suite("Switch words")
struct SwitchWordTests {
    @Test("yes, true, 1 turn a setting on; no, false, 0 off; any other word, or another case, is neither")
    func meanings() {
        for word in ["yes", "true", "1"] { #expect(SwitchWord.meaning(of: word) == true, "\(word)") }
        for word in ["no", "false", "0"] { #expect(SwitchWord.meaning(of: word) == false, "\(word)") }
        for word in ["", "on", "off", "YES", "True", " yes", "2", "y"] { #expect(SwitchWord.meaning(of: word) == nil, "\(word)") }
        #expect(SwitchWord.choices(on: "to start", off: "to stop") == "yes, true, 1 to start, or no, false, 0 to stop")
    }

    @Test("YADTQ_WEB_SECURE_COOKIES takes the rule's words in any case, cluster= exactly; both refusals list them")
    func bothSettingsUseTheRule() throws {
        func cookies(_ value: String) throws -> Bool {
            try SecureCookies.isOn(flag: false, environment: ["YADTQ_WEB_SECURE_COOKIES": value])
        }
        for word in SwitchWord.on {
            #expect(try cookies(word) && cookies(word.uppercased()), "\(word)")
            #expect(try RedisURL(parsing: "redis://h1?cluster=\(word)").isCluster, "\(word)")
        }
        for word in SwitchWord.off {
            #expect(try !cookies(word) && !cookies(word.uppercased()), "\(word)")
            #expect(try !RedisURL(parsing: "redis://h1?cluster=\(word)").isCluster, "\(word)")
        }
        #expect(throws: YADTQError.self, "cluster= is exact, as the README writes it") {
            try RedisURL(parsing: "redis://h1?cluster=YES")
        }
        let cluster = #expect(throws: YADTQError.self) { try RedisURL(parsing: "redis://h1?cluster=maybe") }
        let cookie = #expect(throws: YADTQError.self) { try cookies("maybe") }
        for error in [cluster, cookie] {
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("yes, true, 1") && text.contains("no, false, 0"), "\(text)")
        }
        let several = #expect(throws: YADTQError.self) { try RedisURL(parsing: "redis://h1,h2?cluster=false") }
        #expect(several.map { "\($0)" }?.contains("several nodes with cluster=false") == true)
    }
}
