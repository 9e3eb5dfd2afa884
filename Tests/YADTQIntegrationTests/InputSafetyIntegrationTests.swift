import Foundation
import Testing
import YADTQCore

/// A Redis server of one test on a free port (nothing persisted), for the cases the shared
/// stack's Redis cannot play: a password, or Redis away and back.
struct PrivateRedis {
    let port: Int
    let process: Process

    /// Starts `redis-server` on `port` (a free one by default), with `settings` (`--name value`
    /// pairs) after the test's own, and waits until it answers.
    init(port: Int? = nil, password: String? = nil, settings: [String] = []) throws {
        self.port = try port ?? WebServerProcess.freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var arguments = ["redis-server", "--port", String(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if let password { arguments += ["--requirepass", password] }
        process.arguments = arguments + settings
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while !Self.isListening(self.port) {
            guard ContinuousClock.now < deadline else { throw WebTestError("redis-server did not start on \(self.port)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    var url: String { "redis://127.0.0.1:\(port)/0" }

    func stop() { WebServerProcess.terminate(process) }

    private static func isListening(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

@Suite("Web: hosts, HEAD and Redis away", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct WebInputSafetyTests {
    @Test("a Host the server does not serve gets a 400; HEAD answers like GET")
    func hostsAndHead() throws {
        let stack = try IntegrationStack(label: "web-hosts")
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }
        let rebound = try server.send("GET", "/api/tasks", headers: ["Host: rebind.example"])
        #expect(rebound.status == 400)
        #expect(rebound.error?.contains("does not answer to 'rebind.example'") == true, "\(rebound.body)")
        #expect(rebound.error?.contains("--allowed-hosts") == true)
        #expect(try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2]}"#, headers: ["Host: rebind.example:80"]).status == 400)
        #expect(try server.send("GET", "/", headers: ["Host: rebind.example"]).status == 400)
        #expect(try server.send("GET", "/api/tasks", headers: ["Host: localhost:1"]).status == 200)
        #expect(try server.send("GET", "/api/tasks", headers: ["Host: [::1]:8080"]).status == 200)
        #expect(try stack.store.counts()[.queued] == 0)

        for path in ["/", "/api/tasks", "/healthz", "/static/app.css"] {
            let head = try server.send("HEAD", path)
            #expect(head.status == 200, "HEAD \(path)")
            #expect(head.headers["content-type"] != nil, "HEAD \(path)")
        }
        #expect(try server.send("HEAD", "/api/no-such-route").status == 404)

        let cases: [(method: String, path: String, allow: String)] = [
            ("PUT", "/api/tasks", "POST, GET, HEAD"), ("DELETE", "/api/tasks/some-id", "GET, HEAD"),
            ("PATCH", "/api/tasks/retry", "POST, GET, HEAD"), ("GET", "/api/tasks/some-id/cancel", "POST"),
            ("HEAD", "/api/tasks/some-id/retry", "POST"),
        ]
        for (method, path, allow) in cases {
            let answer = try server.send(method, path)
            #expect(answer.status == 405, "\(method) \(path): \(answer.status)")
            #expect(answer.headers["allow"] == allow, "\(method) \(path): \(answer.headers)")
        }
        #expect(try server.send("PUT", "/api/no-such-route").status == 404, "a path that does not exist is still a 404")
    }

    @Test("--allowed-hosts adds names the server answers to")
    func allowedHostsOption() throws {
        let stack = try IntegrationStack(label: "web-allowed")
        let server = try WebServerProcess(stack: stack, environment: ["YADTQ_WEB_ALLOWED_HOSTS": "tasks.example.com,.corp.example"])
        defer { server.stop() }
        #expect(try server.send("GET", "/api/tasks", headers: ["Host: tasks.example.com"]).status == 200)
        #expect(try server.send("GET", "/api/tasks", headers: ["Host: web.corp.example:8080"]).status == 200)
        #expect(try server.send("GET", "/api/tasks", headers: ["Host: evil.example"]).status == 400)
    }

    @Test("POST /api/tasks with Redis away answers 503 within seconds and queues nothing once Redis is back")
    func submitWithRedisAway() throws {
        let stack = try IntegrationStack(label: "web-503")
        let port = try WebServerProcess.freePort()
        let server = try WebServerProcess(stack: stack, environment: ["YADTQ_REDIS": "redis://127.0.0.1:\(port)/0"])
        defer { server.stop() }
        let started = ContinuousClock.now
        let answer = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2], "id": "while-away"}"#)
        #expect(answer.status == 503, "\(answer.body)")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(answer.error?.contains("redis") == true, "\(answer.body)")

        let redis = try PrivateRedis(port: port)
        defer { redis.stop() }
        Thread.sleep(forTimeInterval: 5)
        var settings = stack.settings
        settings.redis = try RedisURL(parsing: redis.url)
        let store = TaskStore(settings: settings, logger: stack.logger)
        #expect(try store.record(id: "while-away") == nil, "the refused submit must not be queued later")
        let again = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2], "id": "after"}"#)
        #expect(again.status == 202, "\(again.body)")
    }

    @Test("a frozen Redis (SIGSTOP) gets the web's requests a 503 after its 3 s limit, not a 5 s socket timeout")
    func frozenRedis() throws {
        try withFrozenRedis("web-frozen") { server in
            let requests: [(method: String, path: String, body: String?)] = [
                ("GET", "/api/stats", nil), ("POST", "/api/tasks", #"{"type": "add", "args": [1, 2]}"#),
            ]
            for (method, path, body) in requests {
                let started = ContinuousClock.now
                let answer = try server.send(method, path, json: body)
                let took = ContinuousClock.now - started
                #expect(answer.status == 503, "\(method) \(path): \(answer.body)")
                // Each send or reply used to wait the 5 s socket timeout of its own.
                #expect(took < .milliseconds(4_500), "\(method) \(path) took \(took)")
            }
        }
    }

    @Test("yadtq-ctl against a frozen Redis says that no answer came within its limit and what to check, not that the connection was lost")
    func frozenRedisCommandError() throws {
        let stack = try IntegrationStack(label: "ctl-frozen")
        let redis = try PrivateRedis()
        defer { redis.stop() }
        kill(redis.process.processIdentifier, SIGSTOP)
        defer { kill(redis.process.processIdentifier, SIGCONT) }
        let outcome = try stack.runCommand("yadtq-ctl", arguments: ["stats"], input: [], environment: ["YADTQ_REDIS": redis.url])
        #expect(outcome.status == 1)
        #expect(outcome.stderr.contains("no answer from \(redis.url) within"), "\(outcome.stderr)")
        #expect(outcome.stderr.contains("Redis or the network to it is silent"), "\(outcome.stderr)")
        #expect(!outcome.stderr.contains("lost the connection"), "\(outcome.stderr)")
    }

    @Test("requests queued behind others during a Redis stall fail at their own deadline without being sent, not 3 s after the one ahead")
    func frozenRedisQueuedRequests() throws {
        try withFrozenRedis("web-frozen-queue") { server in
            let count = 8
            let all = LockedAnswers.sendAtOnce(count) { _ in try server.send("GET", "/healthz") }.map(\.answer)
            #expect(all.count == count && all.allSatisfy { $0?.status == 503 }, "\(all.map { $0?.status ?? 0 })")
            // Those whose 3 s ran out in the queue were answered at once, never sent (before,
            // each waited its turn and then 3 s of its own, and every answer was a timeout).
            let unsent = all.filter { $0?.body.contains("so it was not sent") == true }.count
            #expect(unsent > 0, "\(all.map { $0?.body ?? "no answer" })")
        }
    }

    @Test("submits and retries queued behind others during a Redis stall answer 503 within their own 3 s; sent again once Redis goes on, each task is queued once")
    func frozenRedisQueuedSubmitsAndRetries() throws {
        try withServerAfterASubmit("web-frozen-submits") { redis, server in
            // Tasks to retry during the stall: cancelled while QUEUED, they are CANCELLED at once.
            let retried = (0..<3).map { "retried-\($0)" }
            for id in retried {
                let submitted = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2], "id": "\#(id)"}"#)
                #expect(submitted.status == 202, "\(submitted.body)")
                #expect(try server.send("POST", "/api/tasks/\(id)/cancel").json?["status"] == "CANCELLED")
            }
            let submits = (0..<5).map { #"{"type": "add", "args": [\#($0), 1], "id": "stalled-\#($0)"}"# }
            let requests: [(path: String, json: String?)] =
                submits.map { ("/api/tasks", $0) } + retried.map { ("/api/tasks/\($0)/retry", nil) }

            kill(redis.process.processIdentifier, SIGSTOP)
            var frozen = true
            defer { if frozen { kill(redis.process.processIdentifier, SIGCONT) } }
            let answers = LockedAnswers.sendAtOnce(requests.count) { try server.send("POST", requests[$0].path, json: requests[$0].json) }
            kill(redis.process.processIdentifier, SIGCONT)
            frozen = false

            var statuses: [String: String] = [:]
            for ((path, _), (answer, took)) in zip(requests, answers) {
                #expect(answer?.status == 503, "\(path): \(answer?.body ?? "no answer")")
                // Each used to wait for those ahead of it, then 3 s of its own: the 8th about 24 s.
                #expect(took < .seconds(6), "\(path) took \(took)")
                for task in answer?.json?["tasks"]?.arrayValue ?? [] {
                    statuses[task["id"]?.stringValue ?? ""] = task["status"]?.stringValue
                }
            }
            // Those whose 3 s ran out while the one ahead waited were never sent, and say so.
            let unsent = answers.filter { $0.answer?.body.contains("so it was not sent") == true }.count
            #expect(unsent > 0, "\(answers.map { $0.answer?.body ?? "no answer" })")
            let submitted = (0..<5).map { "stalled-\($0)" }
            #expect(submitted.allSatisfy { ["UNKNOWN", "NOT_SENT"].contains(statuses[$0]) }, "\(statuses)")

            // Sent again under the same ids, a task the frozen Redis ran answers DUPLICATE, and
            // one never sent is queued now: each is queued once.
            let again = try server.send("POST", "/api/tasks", json: "[" + submits.joined(separator: ", ") + "]")
            #expect([200, 202].contains(again.status), "\(again.body)")
            for task in again.json?["tasks"]?.arrayValue ?? [] {
                let id = task["id"]?.stringValue ?? ""
                let expected: Set<String> = statuses[id] == "NOT_SENT" ? ["QUEUED"] : ["QUEUED", "DUPLICATE"]
                #expect(expected.contains(task["status"]?.stringValue ?? ""), "\(id), \(statuses[id] ?? "?") before: \(task)")
            }
            for id in retried {
                let retry = try server.send("POST", "/api/tasks/\(id)/retry")
                // 409 when the frozen Redis ran the stalled retry once it went on: the task is QUEUED already.
                #expect([200, 409].contains(retry.status), "\(id): \(retry.body)")
                #expect(try server.send("GET", "/api/tasks/\(id)").json?["status"] == "QUEUED", "\(id)")
            }
            // The submit before the stall, the five and the three retried: each once.
            let counts = try server.send("GET", "/api/stats").json?["counts"]
            #expect(counts?["QUEUED"] == 9 && counts?["CANCELLED"] == 0, "\(String(describing: counts))")
        }
    }

    @Test("with a session cookie, the login form and the style sheet answer during a Redis stall: they look up no session")
    func publicPathsDuringRedisStall() throws {
        try withFrozenRedis("web-public-frozen", token: "s3cret-token") { server throws in
            let session = "Cookie: yadtq_session=" + String(repeating: "ab", count: 32)
            for path in ["/login", "/static/app.css", "/static/app.js"] {
                #expect(try server.send("GET", path, headers: [session], as: .anonymous).status == 200, "\(path)")
            }
        }
    }

    @Test("a submit whose Redis froze answers 503 with its tasks' ids, outcome UNKNOWN; sent again under them once Redis goes on, each answers DUPLICATE")
    func frozenSubmitNamesItsTasks() throws {
        try withServerAfterASubmit("web-unknown") { redis, server in
            kill(redis.process.processIdentifier, SIGSTOP)
            var frozen = true
            defer { if frozen { kill(redis.process.processIdentifier, SIGCONT) } }
            let answer = try server.send(
                "POST", "/api/tasks", json: #"[{"type": "add", "args": [1, 2], "id": "mine"}, {"type": "add", "args": [3, 4]}]"#)
            #expect(answer.status == 503, "\(answer.body)")
            #expect(answer.error?.contains("Whether the tasks were queued is unknown") == true, "\(answer.body)")
            let tasks = try JSONValue(parsing: answer.body)["tasks"]?.arrayValue ?? []
            #expect(tasks.count == 2, "\(answer.body)")
            #expect(tasks.allSatisfy { $0["status"] == "UNKNOWN" && $0["type"] == "add" }, "\(answer.body)")
            let ids = tasks.compactMap { $0["id"]?.stringValue }
            #expect(ids.first == "mine", "the client's own id")
            #expect(ids.count == 2 && TaskDeclaration.isValidID(ids[1]) && ids[1] != "mine", "a generated id: \(ids)")

            kill(redis.process.processIdentifier, SIGCONT)
            frozen = false
            // The frozen Redis ran the write it had been sent: sent again under the same ids, nothing is queued twice.
            let again = try server.send(
                "POST", "/api/tasks",
                json: #"[{"type": "add", "args": [1, 2], "id": "mine"}, {"type": "add", "args": [3, 4], "id": "\#(ids.last ?? "")"}]"#)
            #expect(again.status == 200, "\(again.body)")
            let statuses = try JSONValue(parsing: again.body)["tasks"]?.arrayValue?.map { $0["status"] }
            #expect(statuses == ["DUPLICATE", "DUPLICATE"], "\(again.body)")
        }
    }

    @Test("the submit page whose Redis froze shows the tasks again in the box, each with its id")
    func frozenSubmitPage() throws {
        try withServerAfterASubmit("web-unknown-page") { redis, server in
            let jar = try server.cookieJar()
            let form = try server.send("GET", "/submit", cookies: jar)
            let csrf = try #require(form.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
            kill(redis.process.processIdentifier, SIGSTOP)
            defer { kill(redis.process.processIdentifier, SIGCONT) }
            let page = try server.send(
                "POST", "/submit", body: "csrf=\(csrf)&mode=lines&lines=add%205%206",
                headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: \(server.base)"], cookies: jar)
            #expect(page.status == 503, "\(page.body.prefix(400))")
            #expect(page.body.contains("Whether the tasks were queued is unknown"))
            #expect(page.body.contains(#"{&quot;args&quot;:[5,6],&quot;id&quot;:&quot;"#), "the task is in the box with an id")
        }
    }

    @Test("a connection that sends nothing, or trickles header lines, is closed by the server (slowloris)")
    func idleConnectionsClosed() throws {
        let stack = try IntegrationStack(label: "web-idle")
        let server = try WebServerProcess(stack: stack, arguments: ["--idle-timeout", "1s"])
        defer { server.stop() }
        let silent = try RawConnection(port: server.port)
        defer { silent.close() }
        #expect(silent.waitForClose(polls: 60), "a connection that sends nothing must be closed")

        let trickling = try RawConnection(port: server.port)
        defer { trickling.close() }
        trickling.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        var closed = false
        for line in 0..<60 where !closed {
            // A header line every half second never completes the request's head.
            trickling.send("X-Trickle-\(line): 1\r\n")
            closed = trickling.waitForClose(polls: 1)
        }
        #expect(closed, "a request head trickled line by line must not hold its connection for ever")
        #expect(try server.send("GET", "/healthz").status == 200, "the server still answers")
    }

    /// Runs `body` with a web server of its own (with `token`, if any) on a private Redis that
    /// answered once (so the server is connected), then froze (SIGSTOP) until `body` returns.
    private func withFrozenRedis(_ label: String, token: String? = nil, _ body: (WebServerProcess) throws -> Void) throws {
        let stack = try IntegrationStack(label: label)
        let redis = try PrivateRedis()
        defer { redis.stop() }
        let server = try WebServerProcess(stack: stack, token: token, environment: ["YADTQ_REDIS": redis.url])
        defer { server.stop() }
        #expect(try server.send("GET", "/healthz").status == 200)
        kill(redis.process.processIdentifier, SIGSTOP)
        defer { kill(redis.process.processIdentifier, SIGCONT) }
        try body(server)
    }

    /// Runs `body` with a web server of its own on a private Redis that has taken a submit: the
    /// publisher is connected and its queue script loaded, so the next submit's write is sent.
    private func withServerAfterASubmit(_ label: String, _ body: (PrivateRedis, WebServerProcess) throws -> Void) throws {
        let stack = try IntegrationStack(label: label)
        let redis = try PrivateRedis()
        defer { redis.stop() }
        let server = try WebServerProcess(stack: stack, environment: ["YADTQ_REDIS": redis.url])
        defer { server.stop() }
        #expect(try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [0, 0]}"#).status == 202)
        try body(redis, server)
    }
}

@Suite("Worker: start-up checks and tasks that must not take it down", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct WorkerInputSafetyTests {
    @Test("a plugin folder that does not exist stops the worker at once with the folder's name")
    func missingPluginFolder() throws {
        let stack = try IntegrationStack(label: "worker-plugins")
        let missing = "/nonexistent/plugins-\(stack.settings.namespace)"
        let worker = try stack.startWorker("w-noplugins", environment: ["YADTQ_PLUGINS": missing])
        let status = IntegrationStack.waitForExit(worker, timeout: .seconds(20))
        #expect(status != nil && status != 0)
        #expect(stack.workerLog("w-noplugins").contains("the plugin folder \(missing) does not exist"))
    }

    @Test("unreachable Redis, a missing or wrong password: said before joining, repeated, and SIGTERM stops it")
    func redisProblems() throws {
        let stack = try IntegrationStack(label: "worker-redis")
        let redis = try PrivateRedis(password: "pw-\(UUID().uuidString)")
        defer { redis.stop() }
        var closed = try WebServerProcess.freePort()
        while closed == redis.port { closed = try WebServerProcess.freePort() }
        let cases: [(name: String, url: String, says: String)] = [
            ("w-unreachable", "redis://127.0.0.1:\(closed)/0", "cannot connect to redis://127.0.0.1:\(closed)/0"),
            ("w-nopass", redis.url, "Redis needs a password and YADTQ_REDIS gives none"),
            ("w-wrongpass", "redis://:nope@127.0.0.1:\(redis.port)/0", "Redis refused the user or password"),
        ]
        // The topic exists, so a worker that did not wait for a usable Redis would join at once.
        #expect(try stack.run(input: "", arguments: ["--partitions", "1"]).status == 0)
        for (name, url, says) in cases {
            let worker = try stack.startWorker(name, environment: ["YADTQ_REDIS": url])
            let said = eventually(.seconds(20)) { stack.workerLog(name).contains(says) }
            #expect(said, "\(name): \(stack.workerLog(name).suffix(600))")
            #expect(worker.isRunning, "\(name) keeps trying")
            let stopping = ContinuousClock.now
            worker.terminate()
            #expect(IntegrationStack.waitForExit(worker, timeout: .seconds(10)) == 0, "\(name)")
            #expect(ContinuousClock.now - stopping < .seconds(5), "\(name) stops on SIGTERM")
            #expect(!stack.workerLog(name).contains("consuming"), "\(name) never joined the group")
            #expect(!stack.workerLog(name).contains("assigned partitions"), "\(name) never joined the group")
        }
    }

    /// Starts worker `name` against the Redis at `url` and expects it to refuse that Redis
    /// with `refusal` and `remedy`, keep checking and stay out of its group; then `mend`
    /// mends Redis and the worker must find it usable, and `thenCheck` runs while it does.
    /// Returns the worker's log.
    private func expectRefusedUntilMended(
        _ stack: IntegrationStack, _ name: String, url: String, refusal: String, remedy: String, mend: () throws -> Void,
        thenCheck: () throws -> Void = {}
    ) throws -> String {
        // The topic exists, so a worker that did not wait for a usable Redis would join at once.
        #expect(try stack.run(input: "", arguments: ["--partitions", "1"]).status == 0)
        let worker = try stack.startWorker(name, environment: ["YADTQ_REDIS": url])
        defer { WebServerProcess.terminate(worker) }
        #expect(eventually(.seconds(20)) { stack.workerLog(name).contains(refusal) }, "\(stack.workerLog(name).suffix(600))")
        #expect(stack.workerLog(name).contains(remedy))
        #expect(worker.isRunning, "it keeps checking")
        #expect(
            !stack.workerLog(name).contains("consuming") && !stack.workerLog(name).contains("assigned partitions"),
            "it never joined the group")
        try mend()
        #expect(eventually(.seconds(20)) { stack.workerLog(name).contains("is usable again") }, "\(stack.workerLog(name).suffix(600))")
        try thenCheck()
        return stack.workerLog(name)
    }

    @Test("an ACL user kept from YADTQ's keys is refused before joining, naming the keys; given them, its worker runs tasks")
    func aclUser() throws {
        let stack = try IntegrationStack(label: "worker-acl")
        let user = "acl-\(stack.settings.namespace)"
        _ = try stack.redisOnEveryNode(["ACL", "SETUSER", user, "on", ">pw", "~elsewhere:*", "+@all"])
        defer { _ = try? stack.redisOnEveryNode(["ACL", "DELUSER", user]) }
        let node = stack.settings.redis.nodes[0]
        let prefix = stack.settings.keyPrefix
        let log = try expectRefusedUntilMended(
            stack, "w-acl", url: "redis://\(user):pw@\(node)/\(stack.settings.redis.database)",
            refusal: "does not let the user '\(user)' run YADTQ's scripts on its keys (\(prefix)*)",
            remedy: "ACL SETUSER \(user) ~\(prefix)* +@all"
        ) {
            _ = try stack.redisOnEveryNode(["ACL", "SETUSER", user, "resetkeys", "~\(prefix)*"])
        } thenCheck: {
            let run = try stack.run(input: #"{"id": "acl-1", "type": "add", "args": [2, 3]}"#)
            #expect(run.status == 0, "\(run.stderr)")
            let record = try stack.waitForTerminal(["acl-1"], timeout: .seconds(60))[0]
            #expect(record?.status == .success && record?.worker == "w-acl", "\(String(describing: record))")
        }
        #expect(log.contains("redis://\(user):***@"), "the user is named in the log, not the password")
        #expect(!log.contains(":pw@"))
    }

    @Test("a Redis that would evict task records when full is refused before joining; one that evicts only expiring keys is a warning")
    func evictingRedis() throws {
        let stack = try IntegrationStack(label: "worker-evict")
        let redis = try PrivateRedis(settings: ["--maxmemory-policy", "allkeys-lru"])
        defer { redis.stop() }
        let log = try expectRefusedUntilMended(
            stack, "w-evict", url: redis.url,
            refusal: "evicts any key when it is full (maxmemory-policy allkeys-lru): it would drop whole shards of task records",
            remedy: "Set maxmemory-policy noeviction"
        ) {
            _ = try IntegrationStack.outputLines(of: ["redis-cli", "-p", String(redis.port), "CONFIG", "SET", "maxmemory-policy", "volatile-lru"])
        }
        #expect(log.contains("evicts keys that expire when it is full (maxmemory-policy volatile-lru)"))
    }

    @Test("a replica is refused before joining, naming its primary; promoted, it is used")
    func replicaRedis() throws {
        let stack = try IntegrationStack(label: "worker-replica")
        let primary = try PrivateRedis()
        defer { primary.stop() }
        let replica = try PrivateRedis(settings: ["--replicaof", "127.0.0.1", String(primary.port)])
        defer { replica.stop() }
        _ = try expectRefusedUntilMended(
            stack, "w-replica", url: replica.url, refusal: "is a replica of 127.0.0.1:\(primary.port)",
            remedy: "Point YADTQ_REDIS at the primary"
        ) {
            _ = try IntegrationStack.outputLines(of: ["redis-cli", "-p", String(replica.port), "REPLICAOF", "NO", "ONE"])
        }
    }

    @Test("a 1.1 MB error raised by a plugin fails the task with the sandbox's cut and one dead-letter copy; the worker carries on")
    func hugeError() throws {
        let stack = try IntegrationStack(
            label: "worker-huge", extraPlugins: ["huge_error": #"return function() error(string.rep("E", 1100000), 0) end"#])
        let worker = try stack.startWorker("w-huge", arguments: ["--retry-delay", "10ms"])
        defer { WebServerProcess.terminate(worker) }
        let run = try stack.run(input: """
            {"id": "huge-1", "type": "huge_error", "max_attempts": 3}
            {"id": "after-huge", "type": "add", "args": [2, 3]}
            """)
        #expect(run.status == 0, "\(run.stderr)")
        let records = try stack.waitForTerminal(["huge-1", "after-huge"], timeout: .seconds(60))
        #expect(records[0]?.status == .failed)
        let error = records[0]?.error ?? ""
        // The sandbox keeps at most 4 KiB of a message a plugin raises (the worker's own trim
        // of longer errors, ErrorText, is checked by BatchStateMachineTests.hugeErrorTrimmed).
        #expect(error.utf8.count <= 4096)
        #expect(error.hasPrefix("EEEE") && error.hasSuffix("E… [trimmed: 1100000 bytes, the first 4047 kept]"), "\(error.suffix(200))")
        #expect(records[1]?.status == .success)
        #expect(worker.isRunning, "\(stack.workerLog("w-huge").suffix(800))")
        // One more than expected, so that a copy per failed attempt would show.
        let copies = try stack.readTopic(stack.topic + ".dlq", expecting: 2, timeout: .seconds(12))
        #expect(copies.count == 1, "\(copies.map { $0.prefix(80) })")
        #expect(copies.first?.contains(#""id":"huge-1""#) == true)
    }

    @Test("a worker whose message.max.bytes is lowered (YADTQ_KAFKA_MESSAGE_MAX_BYTES) cuts its dead-letter copies to it")
    func deadLetterCopyUnderLoweredLimit() throws {
        let stack = try IntegrationStack(label: "dlq-limit")
        let worker = try stack.startWorker("w-limit", environment: ["YADTQ_KAFKA_MESSAGE_MAX_BYTES": "100000"])
        defer { WebServerProcess.terminate(worker) }
        // 200 KB of arguments: under the producer's default limit, over the worker's. Its
        // unknown type fails it at once.
        let run = try stack.run(input: #"{"id": "wide-1", "type": "no_such_type", "args": [""# + String(repeating: "x", count: 200_000) + "\"]}\n")
        #expect(run.status == 0, "\(run.stderr)")
        let records = try stack.waitForTerminal(["wide-1"], timeout: .seconds(60))
        #expect(records[0]?.status == .failed)
        let copies = try stack.readTopic(stack.topic + ".dlq", expecting: 1, timeout: .seconds(12))
        #expect(copies.count == 1, "no copy on the dead-letter topic: \(stack.workerLog("w-limit").suffix(800))")
        #expect(copies.first.map { $0.utf8.count < 100_000 } == true)
        #expect(copies.first?.contains("too large for the dead-letter topic") == true, "\(copies.map { $0.prefix(200) })")
    }

    @Test("a task too large for the producer is refused before it is written, as is a line over the limit; the rest goes through")
    func messageSize() throws {
        let stack = try IntegrationStack(label: "size")
        // The line fits in 1,000,000 bytes; its message (with id, attempts, queued_at and
        // librdkafka's framing) does not.
        let big = #"{"id": "big", "type": "echo", "args": [""# + String(repeating: "x", count: 999_900) + #""]}"#
        let long = "echo " + String(repeating: "y", count: 1_200_000)
        let run = try stack.run(input: big + "\n" + long + "\n" + #"{"id": "small", "type": "add", "args": [1, 2]}"# + "\n")
        #expect(run.status == 1)
        #expect(run.stderr.contains("-:1: task is 1000020 bytes as a message; at most 1000000"), "\(run.stderr.prefix(500))")
        #expect(run.stderr.contains("-:2: the line is 1200005 bytes long; at most 1000000"), "\(run.stderr.prefix(500))")
        #expect(run.stdout == "small\n")
        #expect(try stack.store.record(id: "big") == nil, "nothing of the refused task is written")
        #expect(try stack.store.counts()[.queued] == 1)
    }

    @Test("arguments nested too deep are refused by yadtq-run; a too-deep message from elsewhere fails under its own id")
    func nesting() throws {
        let stack = try IntegrationStack(label: "worker-deep")
        let deep = String(repeating: "[", count: 511) + String(repeating: "]", count: 511)
        let refused = try stack.run(input: "echo \(deep)\n")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains(":1: argument 1 nests arrays and objects 511 levels deep"), "\(refused.stderr)")
        let deepest = String(repeating: "[", count: 510) + String(repeating: "]", count: 510)
        let accepted = try stack.run(input: #"{"id": "deep-ok", "type": "echo", "args": [\#(deepest)]}"# + "\n")
        #expect(accepted.status == 0, "\(accepted.stderr)")

        let worker = try stack.startWorker("w-deep")
        defer { WebServerProcess.terminate(worker) }
        // A producer that does not keep the limit, written with the Python client.
        let tooDeep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        try publishRaw(stack, #"{"id": "deep-raw", "type": "echo", "args": [\#(tooDeep)]}"#)
        let records = try stack.waitForTerminal(["deep-ok", "deep-raw"], timeout: .seconds(60))
        #expect(records[0]?.status == .success)
        #expect(records[1]?.status == .failed)
        #expect(records[1]?.error?.contains("nested deeper than 512") == true, "\(records[1]?.error ?? "")")
    }

    private func publishRaw(_ stack: IntegrationStack, _ value: String) throws {
        let script = """
            import sys, confluent_kafka
            p = confluent_kafka.Producer({"bootstrap.servers": sys.argv[1]})
            p.produce(sys.argv[2], sys.stdin.buffer.read())
            sys.exit(0 if p.flush(30) == 0 else 1)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, stack.settings.brokers, stack.topic]
        let input = Pipe()
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(Data(value.utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "the Python producer failed")
    }
}

/// A bare TCP connection to a test's server, for what curl cannot do: connect and say
/// nothing, or send a request a line at a time.
final class RawConnection {
    private let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { throw WebTestError("could not connect to 127.0.0.1:\(port): errno \(errno)") }
    }

    /// Sends `text`, ignoring a failure (the server may have closed the connection; MSG_NOSIGNAL:
    /// the write then fails rather than ending the test process with SIGPIPE).
    func send(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.send(descriptor, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
    }

    /// Whether the server closed the connection, waiting up to `polls` half seconds for it.
    func waitForClose(polls: Int) -> Bool {
        for _ in 0..<polls {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 500) > 0 else { continue }
            var byte: UInt8 = 0
            let read = recv(descriptor, &byte, 1, 0)
            if read <= 0 { return true }
        }
        return false
    }

    func close() { Glibc.close(descriptor) }
}

/// The answers of requests sent at once from several threads.
final class LockedAnswers: @unchecked Sendable {
    // @unchecked Sendable: `answers` is read and written only while holding `lock`.
    private let lock = NSLock()
    private var answers: [Int: (answer: HTTPExchange?, took: Duration)] = [:]

    /// Sends `count` requests at once, each from a thread of its own (`concurrentPerform` runs
    /// only as many at a time as there are cores), `send` making the one of each index: each
    /// one's answer (`nil` when it failed) and how long it took, in the order of the indexes.
    static func sendAtOnce(
        _ count: Int, _ send: @escaping @Sendable (Int) throws -> HTTPExchange
    ) -> [(answer: HTTPExchange?, took: Duration)] {
        let answers = LockedAnswers()
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            Thread {
                let started = ContinuousClock.now
                let answer = try? send(index)
                answers.lock.withLock { answers.answers[index] = (answer, ContinuousClock.now - started) }
                group.leave()
            }.start()
        }
        group.wait()
        return answers.lock.withLock { (0..<count).map { answers.answers[$0]! } }
    }
}
