import Testing
import YADTQCore

@Suite("Settings validation")
struct SettingsValidationTests {
    @Test("a malformed Redis URL is refused without showing its password")
    func redisErrorsHidePassword() {
        let urls = [
            "redis://user:s3cret@127.0.0.1:163x91/0",  // bad port
            "redis://u:s3cret@h:6x/0",
            "redis://u:s3cret@h:6379/x",  // bad database
            "redis://u:s3cret@h:6379/-1",
            "redis://u:s3cret@h:6379/0?cluster=maybe",  // bad option value
            "redis://u:s3cret@h:6379/0?clusterr=yes",  // unknown option
            "redis://u:s3cret@h:99999/0",  // port out of range
            "redis://u:s3cret@h:0/0",
            "redis://u:s3cret@h1:7000,/0",  // empty node
            "redis://u:s3cret@h1:7000,h2:7001/2",  // database on a cluster
            "redis://u:s3cret@[::1/0",  // unclosed bracket
            "redis://:s3cret/x@h:6379/0",  // unencoded '/' in the password
            "redis://:s3c/ret@h:6379/0",
            "redis://:s3cret?x@h:6379/0",  // unencoded '?'
            "http://u:s3cret@h:6379/0",  // wrong scheme
            "redis://s3cret/x@h/0",  // a password without its ':'
        ]
        for url in urls {
            let error = #expect(throws: YADTQError.self, "\(url) must be refused") { try RedisURL(parsing: url) }
            let text = error.map { "\($0)" } ?? ""
            #expect(!text.contains("s3cret") && !text.contains("s3c") && !text.contains("ret@"), "\(text)")
            #expect(text.contains("percent-encode '/', '@', '?'"), "\(text)")
        }
    }

    @Test("a URL's mistakes are named: unknown options, ports, empty nodes, unencoded '/' in the password")
    func redisErrorsSayWhat() throws {
        let cases: [(url: String, says: String)] = [
            ("redis://h:6379/0?clusterr=yes", "unknown option 'clusterr' (known: cluster=yes|no)"),
            ("redis://h:99999/0", "bad port in 'h:99999' (a port is 1 to 65535)"),
            ("redis://h:65536", "bad port"),
            ("redis://[::1]x", "bad port"),
            ("redis://h1:7000,", "an empty node in the list"),
            ("redis://,h1:7000", "an empty node in the list"),
            ("redis://:pa/ss@h:6379/0", "an '@' after the host"),
            ("redis://user:s3cret@127.0.0.1:163x91/0", "'redis://user:***@127.0.0.1:163x91/0' is not a Redis URL"),
            ("redis://h/x", "'x' is not a database number"),
        ]
        for (url, says) in cases {
            let error = #expect(throws: YADTQError.self, "\(url)") { try RedisURL(parsing: url) }
            #expect(error.map { "\($0)" }?.contains(says) == true, "\(url): \(error.map { "\($0)" } ?? "")")
        }
        #expect(try RedisURL(parsing: "redis://h:65535").port == 65535)
        #expect(try RedisURL(parsing: "redis://h:1/0?cluster=no").port == 1)
        #expect(try RedisURL(parsing: "redis://:pa%2Fss@h:6379/0").password == "pa/ss")
        #expect(try RedisURL(parsing: "redis:///0").nodes == [.init(host: "127.0.0.1", port: 6379)])
        #expect(RedisURL.redacted("redis://u:p@h") == "redis://u:***@h")
        #expect(RedisURL.redacted("redis://h:1") == "redis://h:1")
    }

    @Test("YADTQ_REDIS's error does not show the password either")
    func redisEnvironment() {
        let error = #expect(throws: YADTQError.self) {
            try YADTQSettings(environment: ["YADTQ_REDIS": "redis://user:s3cret@127.0.0.1:163x91/0"])
        }
        #expect(error.map { "\($0)" }?.contains("s3cret") == false)
    }

    @Test("a duration is decimal digits with a unit: hex, exponents and signs are refused")
    func durations() {
        for text in ["0x10s", "0x10", "1e3", "1e3s", "+5s", "-1s", " 5s", "5s ", "inf", "nan", "0x1p3", "1_000", ".5s", "5.s", "", "s"] {
            #expect(Duration(parsing: text) == nil, "\(text)")
        }
        #expect(Duration(parsing: "1.5") == .milliseconds(1500))
        #expect(Duration(parsing: "500ms") == .milliseconds(500))
        #expect(Duration(parsing: "0s") == .zero)
        #expect(Duration(parsing: "10m") == .seconds(600))
        #expect(Duration(parsing: "007") == .seconds(7))
    }

    @Test("YADTQ_NAMESPACE without braces, whitespace or control characters")
    func namespaces() throws {
        for namespace in ["x{}", "{app}", "a}", "my app", "tab\there", "new\nline", "", "esc\u{1B}"] {
            let error = #expect(throws: YADTQError.self, "\(namespace)") {
                try YADTQSettings(environment: ["YADTQ_NAMESPACE": namespace])
            }
            #expect(error.map { "\($0)" }?.contains("YADTQ_NAMESPACE") == true)
            #expect(error.map { "\($0)" }?.contains("\u{1B}") == false, "shown escaped")
        }
        for namespace in ["yadtq", "app-1", "team.app:v2", "a_b"] {
            #expect(try YADTQSettings(environment: ["YADTQ_NAMESPACE": namespace]).namespace == namespace)
        }
        let braces = #expect(throws: YADTQError.self) { try YADTQSettings(environment: ["YADTQ_NAMESPACE": "{app}"]) }
        #expect(braces.map { "\($0)" }?.contains("'{'") == true)
    }

    @Test("an allowed host with a port matches that host")
    func allowedHostWithPort() {
        let hosts = HostAllowList(listeningOn: "0.0.0.0", extra: ["tasks.example.com:8080", "[::2]:8080", "::3"])
        #expect(hosts.allows("tasks.example.com:8080"))
        #expect(hosts.allows("tasks.example.com"))
        #expect(hosts.allows("[::2]:443"))
        #expect(hosts.allows("[::3]"))
        #expect(!hosts.allows("example.com"))
    }
}

@Suite("Secure cookies setting")
struct SecureCookiesTests {
    @Test("--secure-cookies turns it on; YADTQ_WEB_SECURE_COOKIES reads yes/true/1 and no/false/0 in any case; off by default")
    func readsFlagAndVariable() throws {
        #expect(try !SecureCookies.isOn(flag: false, environment: [:]))
        #expect(try SecureCookies.isOn(flag: true, environment: [:]))
        for value in ["yes", "TRUE", "1"] {
            #expect(try SecureCookies.isOn(flag: false, environment: ["YADTQ_WEB_SECURE_COOKIES": value]), "\(value)")
        }
        for value in ["", "No", "false", "0"] {
            #expect(try !SecureCookies.isOn(flag: false, environment: ["YADTQ_WEB_SECURE_COOKIES": value]), "\(value)")
        }
    }

    @Test("a value that is neither on nor off is refused with the known ones, not taken as off")
    func refusesOthers() {
        #expect {
            try SecureCookies.isOn(flag: false, environment: ["YADTQ_WEB_SECURE_COOKIES": "on-please"])
        } throws: { error in
            let text = "\(error)"
            return text.contains("YADTQ_WEB_SECURE_COOKIES='on-please'") && text.contains("yes, true, 1")
        }
    }
}
