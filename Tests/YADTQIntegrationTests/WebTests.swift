import Foundation
import Testing
import YADTQCore

/// `yadtq-web`'s JSON API and its safety rules, against a running server, the real Redis
/// and broker, and a real worker. Requests are made with curl, so YADTQ is not checked
/// with its own code.
@Suite("Web API", .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"), .serialized)
struct WebAPITests {
    @Test("POST /api/tasks queues a list and a single task; a worker runs them; every read shows them, also after a restart")
    func submitListAndRead() throws {
        let stack = try IntegrationStack()
        let worker = try stack.startWorker("w-api")
        defer { WebServerProcess.terminate(worker) }
        var server = try WebServerProcess(stack: stack)
        defer { server.stop() }

        let batch = try server.send(
            "POST", "/api/tasks",
            json: #"[{"type": "add", "args": [1, 2], "id": "api-add"}, {"type": "echo", "args": ["<script>alert(1)</script>"], "id": "api-xss"}]"#)
        #expect(batch.status == 202, "\(batch.body)")
        let queued = try #require(batch.json?["tasks"]?.arrayValue)
        #expect(queued.map { $0["status"]?.stringValue } == ["QUEUED", "QUEUED"])
        #expect(queued.allSatisfy { $0["partition"]?.intValue != nil })
        #expect(queued.first?["url"]?.stringValue == "/tasks/api-add")

        let single = try server.send("POST", "/api/tasks", json: #"{"type": "div", "args": [1, 0], "id": "api-div", "max_attempts": 1}"#)
        #expect(single.status == 202, "\(single.body)")
        #expect(single.json?["tasks"]?[0]?["max_attempts"]?.intValue == 1)
        let again = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [5, 5], "id": "api-add"}"#)
        #expect(again.json?["tasks"]?[0]?["status"]?.stringValue == "DUPLICATE")
        #expect(again.status == 200, "a submission sent again succeeds: 503 would make a client retry for ever")

        let add = try server.waitForTerminal("api-add")
        #expect(add["status"]?.stringValue == "SUCCESS")
        #expect(add["result"] == .int(3))
        #expect(add["attempts"]?.intValue == 1)
        #expect(add["worker"]?.stringValue == "w-api")
        #expect(add["run_ms"]?.intValue != nil && add["total_ms"]?.intValue != nil)
        #expect(try server.waitForTerminal("api-xss")["result"] == .array([.string("<script>alert(1)</script>")]))
        let division = try server.waitForTerminal("api-div")
        #expect(division["status"]?.stringValue == "FAILED")
        #expect(division["errors"]?.arrayValue?.count == 1)
        #expect(division["error"]?.stringValue?.contains("division by zero") == true)

        let page = try server.send("GET", "/tasks/api-xss").body
        #expect(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!page.contains("<script>alert"), "a task's args must never become markup")

        // A new server process shows everything: nothing lived in the old one's memory.
        server.stop()
        server = try WebServerProcess(stack: stack)
        let all = try server.send("GET", "/api/tasks")
        #expect(all.status == 200)
        #expect(Set(all.json?["tasks"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []) == ["api-add", "api-xss", "api-div"])
        #expect(all.json?["counts"] == ["SCHEDULED": 0, "QUEUED": 0, "PROCESSING": 0, "SUCCESS": 2, "FAILED": 1, "CANCELLED": 0])
        let failed = try server.send("GET", "/api/tasks?status=FAILED")
        #expect(failed.json?["tasks"]?.arrayValue?.map { $0["id"] } == [.string("api-div")])
        let byType = try server.send("GET", "/api/tasks?type=add&status=SUCCESS")
        #expect(byType.json?["tasks"]?.arrayValue?.map { $0["id"] } == [.string("api-add")])

        let firstPage = try server.send("GET", "/api/tasks?limit=2")
        #expect(firstPage.json?["tasks"]?.arrayValue?.count == 2)
        let cursor = try #require(firstPage.json?["next_cursor"]?.stringValue)
        let secondPage = try server.send("GET", "/api/tasks?limit=2&cursor=\(cursor)")
        #expect(secondPage.json?["tasks"]?.arrayValue?.count == 1)
        #expect(secondPage.json?["next_cursor"] == .null)

        // The heartbeat catches up with the finished tasks within an interval or two.
        var entry: JSONValue = .null
        let deadline = ContinuousClock.now + .seconds(20)
        repeat {
            Thread.sleep(forTimeInterval: 0.2)
            let workers = try server.send("GET", "/api/workers").json?["workers"]?.arrayValue ?? []
            entry = workers.first { $0["name"]?.stringValue == "w-api" } ?? .null
        } while entry["processed"]?.intValue != 3 && ContinuousClock.now < deadline
        #expect(entry["verdict"]?.stringValue == "ALIVE", "\(entry)")
        #expect(entry["processed"]?.intValue == 3)

        let stats = try server.send("GET", "/api/stats")
        #expect(stats.json?["total"]?.intValue == 3)
        #expect(stats.json?["types"]?["add"]?.intValue == 1)
        let buckets = stats.json?["throughput"]?["buckets"]?.arrayValue ?? []
        #expect(buckets.count == 60)
        #expect(buckets.reduce(0) { $0 + ($1["succeeded"]?.intValue ?? 0) } == 2)
        // One entry per master: a single Redis, or each master of the cluster the client found.
        let memory = stats.json?["redis_memory"]?.arrayValue ?? []
        #expect(!memory.isEmpty && memory.allSatisfy { ($0["used_bytes"]?.intValue ?? 0) > 0 && $0["maxmemory_bytes"] == 0 }, "\(memory)")
        #expect(stack.settings.redis.isCluster || memory.count == 1)

        #expect(try server.send("GET", "/healthz").json?["status"]?.stringValue == "ok")
    }

    @Test("bad input gets a 4xx with a message that says what to fix, and nothing is queued")
    func rejectsBadInput() throws {
        let stack = try IntegrationStack()
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }

        let unknown = try server.send("POST", "/api/tasks", json: #"{"type": "no_such_type", "args": [1]}"#)
        #expect(unknown.status == 422)
        #expect(unknown.error?.contains("unknown task type 'no_such_type'") == true, "\(unknown.body)")
        #expect(unknown.error?.contains("known types: add") == true)

        let malformed = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2"#)
        #expect(malformed.status == 400)
        #expect(malformed.error?.contains("not valid JSON") == true, "\(malformed.body)")

        let notArray = try server.send("POST", "/api/tasks", json: #"[{"type": "add", "args": [1, 2]}, {"type": "add", "args": 3}]"#)
        #expect(notArray.status == 400)
        #expect(notArray.json?["details"]?[0]?.stringValue?.hasPrefix("task 2: \"args\" must be a JSON array") == true, "\(notArray.body)")

        let attempts = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2], "max_attempts": 0}"#)
        #expect(attempts.status == 400)
        #expect(attempts.error?.contains("max_attempts") == true)

        let misspelt = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2], "id": "misspelt", "delai": "5s"}"#)
        #expect(misspelt.status == 400)
        #expect(misspelt.error?.contains(#"unknown key "delai": did you mean "delay"?"#) == true, "\(misspelt.body)")
        #expect(try server.send("GET", "/api/tasks/misspelt").status == 404, "a refused submit queues nothing")

        let huge = "[" + Array(repeating: #"{"type": "add", "args": [1, 2]}"#, count: 40_000).joined(separator: ",") + "]"
        let oversize = try server.send("POST", "/api/tasks", json: huge)
        #expect(oversize.status == 413)
        #expect(oversize.error?.contains("larger than 1024 KiB") == true, "\(oversize.body)")

        let bigArgs = #"[""# + String(repeating: "x", count: 999_900) + #""]"#
        let big = try server.send("POST", "/api/tasks", json: #"[{"type": "add", "args": [1, 2]}, {"type": "echo", "id": "big", "args": "# + bigArgs + "}]")
        #expect(big.status == 413, "\(big.body.prefix(300))")
        #expect(big.json?["details"]?[0]?.stringValue?.hasPrefix("task 2: task is 1000020 bytes as a message; at most 1000000") == true, "\(big.body.prefix(300))")
        #expect(try stack.store.record(id: "big") == nil, "nothing of a refused submission is written")

        let form = try server.send("POST", "/api/tasks", body: "type=add", headers: ["Content-Type: application/x-www-form-urlencoded"])
        #expect(form.status == 415)

        let missing = try server.send("GET", "/api/tasks/never-submitted")
        #expect(missing.status == 404)
        #expect(missing.error?.contains("no task with id 'never-submitted'") == true)
        #expect(try server.send("GET", "/tasks/never-submitted").status == 404)

        #expect(try server.send("GET", "/api/tasks?status=DONE").error?.contains("unknown status 'DONE'") == true)
        #expect(try server.send("GET", "/api/tasks?cursor=soon").status == 400)
        // A position no cursor holds (past 2^53) is refused before Redis is asked anything.
        let hugePosition = Array(repeating: "1764670000:99999999999999999", count: stack.store.keys.shards).joined(separator: ".")
        let beyond = try server.send("GET", "/api/tasks?cursor=\(hugePosition)")
        #expect(beyond.status == 400, "\(beyond.body)")
        #expect(beyond.error?.contains("leave it out for the newest tasks") == true, "\(beyond.body)")
        #expect(try server.send("GET", "/api/tasks?limit=100000").status == 400)
        #expect(try server.send("GET", "/api/no-such-route").status == 404)

        // The submit form refuses a post without its CSRF token, and one from another site.
        let noToken = try server.send(
            "POST", "/submit", body: "mode=one&type=add&args=1+2", headers: ["Content-Type: application/x-www-form-urlencoded"])
        #expect(noToken.status == 403)
        #expect(noToken.body.contains("security token"))
        let crossSite = try server.send(
            "POST", "/submit", body: "mode=one&type=add&args=1+2",
            headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: http://evil.example"])
        #expect(crossSite.status == 403)
        #expect(crossSite.body.contains("cross-site request refused"))

        #expect(try stack.store.counts() == [.scheduled: 0, .queued: 0, .processing: 0, .success: 0, .failed: 0, .cancelled: 0])
    }

    @Test("delay and at: the API and the submit form schedule a task; a bad one is refused; a SCHEDULED task can be cancelled")
    func delayedSubmission() throws {
        let stack = try IntegrationStack(label: "webdelay")
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }
        let before = currentEpochMilliseconds()
        let delayed = try server.send(
            "POST", "/api/tasks",
            json: #"[{"type": "echo", "args": [1], "id": "web-later", "delay": "1h"}, {"type": "echo", "args": [2], "id": "web-at", "at": "2030-01-01T00:00:00Z"}]"#)
        #expect(delayed.status == 400, "2030 is more than a year ahead: \(delayed.body)")
        #expect(delayed.json?["details"]?[0]?.stringValue?.contains(#"task 2: invalid "at""#) == true, "\(delayed.body)")
        let accepted = try server.send("POST", "/api/tasks", json: #"{"type": "echo", "args": [1], "id": "web-later", "delay": "1h"}"#)
        #expect(accepted.status == 202, "\(accepted.body)")
        #expect(accepted.json?["tasks"]?[0]?["status"]?.stringValue == "SCHEDULED")
        let due = try #require(accepted.json?["tasks"]?[0]?["due_at"]?.intValue)
        #expect(due >= before + 3_600_000 && due <= currentEpochMilliseconds() + 3_600_000)
        let record = try server.send("GET", "/api/tasks/web-later")
        #expect(record.json?["status"]?.stringValue == "SCHEDULED" && record.json?["due_at"]?.intValue == due, "\(record.body)")
        let listed = try server.send("GET", "/api/tasks?status=SCHEDULED")
        #expect(listed.json?["tasks"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["web-later"], "\(listed.body)")
        #expect(try server.send("GET", "/api/stats").body.contains(#""SCHEDULED":1"#))

        let jar = try server.cookieJar()
        let form = try server.send("GET", "/submit", cookies: jar)
        #expect(form.body.contains(#"name="delay""#))
        let csrf = try #require(form.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
        let post = ["Content-Type: application/x-www-form-urlencoded", "Origin: \(server.base)"]
        let bad = try server.send("POST", "/submit", body: "csrf=\(csrf)&mode=one&type=echo&args=1&delay=soon", headers: post, cookies: jar)
        #expect(bad.status == 400)
        #expect(bad.body.contains("the delay cannot be read"), "\(bad.body)")
        let good = try server.send("POST", "/submit", body: "csrf=\(csrf)&mode=one&type=echo&args=1&delay=90s", headers: post, cookies: jar)
        #expect(good.status == 201)
        #expect(good.body.contains("SCHEDULED"))
        #expect(try stack.store.counts()[.scheduled] == 2, "nothing of the refused submissions was queued")

        let cancelled = try server.send("POST", "/api/tasks/web-later/cancel")
        #expect(cancelled.status == 200)
        #expect(cancelled.json?["from"]?.stringValue == "SCHEDULED" && cancelled.json?["status"]?.stringValue == "CANCELLED")
    }

    @Test("the tasks with ids . and .. have pages, links and buttons that work, though a path cannot carry them")
    func dotIDs() throws {
        let stack = try IntegrationStack()
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }
        let submitted = try server.send("POST", "/api/tasks", json: #"[{"type": "add", "id": "."}, {"type": "add", "id": ".."}]"#)
        #expect(submitted.status == 202, "\(submitted.body)")
        // A browser resolves "." and ".." segments, "%2E" spelled too, before it sends a request:
        // the links keep the id out of the path.
        #expect(submitted.json?["tasks"]?.arrayValue?.map { $0["url"] } == ["/task?id=.", "/task?id=.."])
        let list = try server.send("GET", "/tasks").body
        #expect(list.contains(#"<a href="/task?id=..">..</a>"#), "the list links to the task")

        let jar = try server.cookieJar()
        for id in [".", ".."] {
            let page = try server.send("GET", "/task?id=\(id)", as: .anonymous, cookies: jar)
            #expect(page.status == 200)
            #expect(page.body.contains("<h1>Task <code>\(id)</code></h1>"), "\(page.body.prefix(300))")
            let (action, cancel) = try server.pressFirstButton(of: page, cookies: jar)
            #expect(action == "/task/cancel?id=\(id)")
            #expect(cancel.status == 303, "\(cancel.body.prefix(300))")
            #expect(cancel.headers["location"] == "/task?id=\(id)")
        }
        #expect(try stack.store.statuses(of: [".", ".."]) == [.cancelled, .cancelled])
        #expect(try server.send("GET", "/api/tasks/%2E%2E").json?["status"] == "CANCELLED", "the API takes the id percent-encoded")
    }

    @Test("the task with id retry, the bulk retry's path segment, is read at its url and through the API; its buttons work")
    func retryID() throws {
        let stack = try IntegrationStack()
        let server = try WebServerProcess(stack: stack)
        defer { server.stop() }
        let submitted = try server.send("POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2], "id": "retry"}"#)
        #expect(submitted.status == 202, "\(submitted.body)")
        let url = try #require(submitted.json?["tasks"]?[0]?["url"]?.stringValue)
        let jar = try server.cookieJar()
        let page = try server.send("GET", url, as: .anonymous, cookies: jar)
        #expect(page.status == 200, "GET \(url): \(page.status) \(page.body.prefix(300))")
        #expect(page.body.contains("<h1>Task <code>retry</code></h1>"), "\(page.body.prefix(300))")
        let read = try server.send("GET", "/api/tasks/retry")
        #expect(read.status == 200, "\(read.status) \(read.body.prefix(300))")
        #expect(read.json?["id"] == "retry" && read.json?["status"] == "QUEUED")

        // Its buttons, and the API's changes of that one task (no worker runs it).
        let (action, cancel) = try server.pressFirstButton(of: page, cookies: jar)
        #expect(cancel.status == 303, "POST \(action): \(cancel.body.prefix(300))")
        #expect(cancel.headers["location"] == url)
        #expect(try stack.store.statuses(of: ["retry"]) == [.cancelled])
        #expect(try server.send("POST", "/api/tasks/retry/retry").json?["status"] == "QUEUED")
        #expect(try server.send("POST", "/api/tasks/retry/cancel").json?["status"] == "CANCELLED")

        // The bulk retry keeps its path.
        let bulk = try server.send("POST", "/api/tasks/retry", json: #"{"status": "CANCELLED"}"#)
        #expect(bulk.status == 200, "\(bulk.body)")
        #expect(bulk.json?["requeued"]?.intValue == 1)
        #expect(try stack.store.statuses(of: ["retry"]) == [.queued])
    }

    @Test("with YADTQ_WEB_TOKEN, the API needs the bearer token and pages need a login")
    func tokenProtectsEverything() throws {
        let stack = try IntegrationStack()
        let server = try WebServerProcess(stack: stack, token: "s3cret-token")
        defer { server.stop() }

        let anonymous = try server.send("GET", "/api/tasks", as: .anonymous)
        #expect(anonymous.status == 401)
        #expect(anonymous.error?.contains("Authorization: Bearer") == true)
        #expect(try server.send("GET", "/api/tasks", as: .token("wrong")).status == 401)
        #expect(try server.send("GET", "/api/tasks", as: .token("s3cret-token")).status == 200)
        #expect(try server.send("GET", "/healthz", as: .anonymous).status == 200, "the health check stays open")
        // Prometheus scrapes /metrics with the bearer token, as the README's scrape config shows.
        let metrics = try server.send("GET", "/metrics", as: .token("s3cret-token"))
        #expect(metrics.status == 200, "\(metrics.status) \(metrics.headers["location"] ?? "") \(metrics.body.prefix(300))")
        #expect(metrics.body.contains("yadtq_tasks"))
        for credentials in [WebServerProcess.Credentials.anonymous, .token("wrong")] {
            let refused = try server.send("GET", "/metrics", as: credentials)
            #expect(refused.status == 401, "\(credentials): \(refused.status) \(refused.headers["location"] ?? "")")
            #expect(refused.error?.contains("Authorization: Bearer") == true)
        }

        let page = try server.send("GET", "/tasks?status=FAILED", as: .anonymous)
        #expect(page.status == 302)
        #expect(page.headers["location"] == "/login?next=%2Ftasks%3Fstatus%3DFAILED")

        // Sign in through the form: GET sets the CSRF cookie, POST checks it and the token.
        let jar = try server.cookieJar()
        let form = try server.send("GET", "/login", as: .anonymous, cookies: jar)
        let csrf = try #require(form.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
        let post = ["Content-Type: application/x-www-form-urlencoded", "Origin: \(server.base)"]
        let wrong = try server.send(
            "POST", "/login", body: "csrf=\(csrf)&next=%2Ftasks&token=nope", headers: post, as: .anonymous, cookies: jar)
        #expect(wrong.status == 401)
        let signedIn = try server.send(
            "POST", "/login", body: "csrf=\(csrf)&next=%2Ftasks&token=s3cret-token", headers: post, as: .anonymous, cookies: jar)
        #expect(signedIn.status == 303)
        #expect(signedIn.headers["location"] == "/tasks")
        let tasks = try server.send("GET", "/tasks", as: .anonymous, cookies: jar)
        #expect(tasks.status == 200)
        #expect(tasks.body.contains("<h1>Tasks</h1>"))
        #expect(try server.send("GET", "/api/stats", as: .anonymous, cookies: jar).status == 200, "the page's session reads the API")
        #expect(try server.send("GET", "/metrics", as: .anonymous, cookies: jar).status == 200, "and the metrics")
        let cookieSubmit = try server.send(
            "POST", "/api/tasks", json: #"{"type": "add", "args": [1, 2]}"#, as: .anonymous, cookies: jar)
        #expect(cookieSubmit.status == 401, "submitting through the API needs the bearer token, not the page's cookie")
        for spelling in ["//api/tasks", "/api//tasks", "/api/tasks/", "/static/../api/tasks", "/./api/tasks"] {
            let sneaky = try server.send(
                "POST", spelling, json: #"{"type": "add", "args": [1, 2]}"#, as: .anonymous, cookies: jar)
            #expect(sneaky.status == 401, "POST \(spelling) with the page's cookie only: \(sneaky.status) \(sneaky.body)")
        }
        #expect(try server.send("GET", "//api//tasks", as: .anonymous).status == 401)
        #expect(try stack.store.counts()[.queued] == 0)

        // A session belongs to the token it signed in with: a server with another token (a
        // rotated one, or a second server's) in the same namespace does not honour it.
        let rotated = try WebServerProcess(stack: stack, token: "rotated-token")
        defer { rotated.stop() }
        #expect(try rotated.send("GET", "/tasks", as: .anonymous, cookies: jar).status == 302)
        #expect(try server.send("GET", "/tasks", as: .anonymous, cookies: jar).status == 200)

        // After login, only a path on this server: a tab or a line break, which a browser
        // drops from a URL, must not turn "/\t/evil.example" into "//evil.example".
        for next in ["%2F%09%2Fevil.example", "%2F%0A%2Fevil.example", "%2F%20%2Fevil.example"] {
            let sneaky = try server.send(
                "POST", "/login", body: "csrf=\(csrf)&next=\(next)&token=s3cret-token", headers: post, as: .anonymous,
                cookies: jar)
            #expect(sneaky.headers["location"] == "/", "next=\(next): \(sneaky.headers["location"] ?? "none")")
            let form = try server.send("GET", "/login?next=\(next)", as: .anonymous, cookies: jar)
            #expect(form.body.contains(#"name="next" value="/">"#), "next=\(next)")
        }

        let signedOut = try server.send("POST", "/logout", body: "csrf=\(csrf)", headers: post, as: .anonymous, cookies: jar)
        #expect(signedOut.status == 303)
        #expect(try server.send("GET", "/tasks", as: .anonymous, cookies: jar).status == 302)
    }

    @Test("--secure-cookies, or YADTQ_WEB_SECURE_COOKIES=yes, marks the CSRF and session cookies Secure; without either they are not")
    func secureCookies() throws {
        let stack = try IntegrationStack(label: "web-secure")
        let cases: [(arguments: [String], environment: [String: String], secure: Bool)] = [
            (["--secure-cookies"], [:], true), ([], ["YADTQ_WEB_SECURE_COOKIES": "yes"], true), ([], [:], false),
        ]
        for (arguments, environment, secure) in cases {
            let server = try WebServerProcess(stack: stack, token: "s3cret-token", environment: environment, arguments: arguments)
            defer { server.stop() }
            let form = try server.send("GET", "/login", as: .anonymous)
            let csrfCookie = form.headers["set-cookie"] ?? ""
            let csrf = try #require(form.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
            // The cookie is sent by hand: curl keeps no Secure cookie it got over plain HTTP.
            let post = ["Content-Type: application/x-www-form-urlencoded", "Origin: \(server.base)", "Cookie: yadtq_csrf=\(csrf)"]
            let signedIn = try server.send("POST", "/login", body: "csrf=\(csrf)&token=s3cret-token", headers: post, as: .anonymous)
            #expect(signedIn.status == 303, "\(arguments) \(environment)")
            let sessionCookie = signedIn.headers["set-cookie"] ?? ""
            let session = sessionCookie.prefix { $0 != ";" }
            let signedOut = try server.send(
                "POST", "/logout", body: "csrf=\(csrf)", headers: post.dropLast() + ["Cookie: yadtq_csrf=\(csrf); \(session)"],
                as: .anonymous)
            let cookies = [csrfCookie, sessionCookie, signedOut.headers["set-cookie"] ?? ""]
            #expect(cookies[0].hasPrefix("yadtq_csrf=") && cookies[1].hasPrefix("yadtq_session="), "\(cookies)")
            #expect(cookies[2].hasPrefix("yadtq_session=") && cookies[2].contains("Max-Age=0"), "\(cookies)")
            for cookie in cookies {
                #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "\(cookie)")
                #expect(cookie.split(separator: ";").contains { $0.trimmingCharacters(in: .whitespaces) == "Secure" } == secure,
                    "\(arguments) \(environment): \(cookie)")
            }
        }
    }

    @Test("wrong tokens at the login form are logged with the client's address; after ten, signing in answers 429 with Retry-After, the right token too")
    func loginThrottle() throws {
        let stack = try IntegrationStack(label: "web-login-throttle")
        let server = try WebServerProcess(stack: stack, token: "s3cret-token")
        defer { server.stop() }
        let jar = try server.cookieJar()
        let form = try server.send("GET", "/login", as: .anonymous, cookies: jar)
        let csrf = try #require(form.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
        let post = ["Content-Type: application/x-www-form-urlencoded", "Origin: \(server.base)"]
        func signIn(_ token: String) throws -> HTTPExchange {
            try server.send("POST", "/login", body: "csrf=\(csrf)&next=%2F&token=\(token)", headers: post, as: .anonymous, cookies: jar)
        }
        for guess in 0..<LoginThrottle.maximumFailures {
            #expect(try signIn("guess-\(guess)").status == 401, "guess \(guess)")
        }
        let refused = try signIn("guess-more")
        #expect(refused.status == 429, "\(refused.status)")
        #expect(refused.headers["retry-after"].flatMap { Int($0) }.map { $0 >= 1 } == true, "\(refused.headers)")
        #expect(refused.body.contains("Too many wrong tokens were tried"))
        #expect(try signIn("s3cret-token").status == 429, "the right token is not checked while signing in is closed")
        #expect(try server.send("GET", "/api/tasks").status == 200, "the bearer token still works")
        #expect(try eventually(.seconds(10)) { server.log.contains("failed sign-in from 127.0.0.1: wrong token") }, "\(server.log)")
        #expect(server.log.contains("signing in is closed for a while"))
    }

    @Test("the bearer scheme's name is case-insensitive, as HTTP's are")
    func bearerSchemeCase() throws {
        let stack = try IntegrationStack(label: "web-bearer-case")
        let server = try WebServerProcess(stack: stack, token: "s3cret-token")
        defer { server.stop() }
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let answer = try server.send("GET", "/api/tasks", headers: ["Authorization: \(scheme) s3cret-token"], as: .anonymous)
            #expect(answer.status == 200, "\(scheme): \(answer.status)")
        }
        #expect(try server.send("GET", "/api/tasks", headers: ["Authorization: Basic s3cret-token"], as: .anonymous).status == 401)
    }
}

/// A `yadtq-web` process of one test, on a free port, with its output in `.test-artifacts`.
struct WebServerProcess {
    let process: Process
    let port: Int
    let base: String
    /// Where the server's standard output and error go.
    let logPath: String
    /// The bearer token API calls send by default.
    let token: String?

    /// - Parameters:
    ///   - environment: settings over the stack's, e.g. another `YADTQ_REDIS`.
    ///   - arguments: flags after `--host` and `--port`, e.g. `--idle-timeout 1s`.
    init(
        stack: IntegrationStack, token: String? = nil, environment extra: [String: String] = [:], arguments: [String] = []
    ) throws {
        let port = try Self.freePort()
        self.port = port
        base = "http://127.0.0.1:\(port)"
        self.token = token
        process = Process()
        process.executableURL = URL(fileURLWithPath: stack.binDirectory + "/yadtq-web")
        process.arguments = ["--host", "127.0.0.1", "--port", String(port)] + arguments
        var environment = stack.environment
        environment["YADTQ_WEB_TOKEN"] = token
        process.environment = environment.merging(extra) { _, new in new }
        let logName = "\(stack.settings.namespace)-web-\(port).log"
        logPath = IntegrationStack.repository.appendingPathComponent(".test-artifacts/\(logName)").path
        let log = try IntegrationStack.artifact(logName)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        // Up once it answers: 200, or 503 when the test keeps Redis away on purpose.
        while ![200, 503].contains(try? send("GET", "/healthz").status) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                stop()
                throw WebTestError("yadtq-web did not answer on \(base) within 30 s; see .test-artifacts")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    func stop() {
        Self.terminate(process)
    }

    /// What the server has logged so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Stops a process the test started: SIGTERM, then SIGKILL if it lingers.
    static func terminate(_ process: Process) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// A port on 127.0.0.1 that nothing listens on right now (the kernel's pick for port 0).
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw WebTestError("socket() failed: errno \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(descriptor, generic, length) == 0 && getsockname(descriptor, generic, &length) == 0
            }
        }
        guard bound else { throw WebTestError("could not bind a free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A fresh cookie file for curl, for a test that signs in.
    func cookieJar() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-cookies-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return path
    }

    /// Who a request claims to be.
    enum Credentials {
        /// The server's own token, when it has one.
        case serverToken
        case anonymous
        case token(String)
    }

    /// One request with curl; `json` sends a body with `Content-Type: application/json`.
    func send(
        _ method: String, _ path: String, json: String? = nil, body: String? = nil, headers: [String] = [],
        as credentials: Credentials = .serverToken, cookies: String? = nil
    ) throws -> HTTPExchange {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bodyFile = directory.appendingPathComponent("body").path
        let headerFile = directory.appendingPathComponent("headers").path
        // --path-as-is: the path reaches the server exactly as written, `//` and `..` included.
        var arguments = ["-sS", "--path-as-is", "-o", bodyFile, "-D", headerFile, "-w", "%{http_code}", "--max-time", "30"]
        arguments += method == "HEAD" ? ["--head"] : ["-X", method]
        var allHeaders = headers
        switch credentials {
        case .serverToken: if let token { allHeaders.append("Authorization: Bearer \(token)") }
        case .anonymous: break
        case .token(let value): allHeaders.append("Authorization: Bearer \(value)")
        }
        if json != nil { allHeaders.append("Content-Type: application/json") }
        for header in allHeaders { arguments += ["-H", header] }
        if let content = json ?? body {
            let requestFile = directory.appendingPathComponent("request")
            try Data(content.utf8).write(to: requestFile)
            arguments += ["--data-binary", "@" + requestFile.path]
        }
        if let cookies { arguments += ["-b", cookies, "-c", cookies] }
        arguments.append(base + path)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let status = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let code = Int(status) else {
            throw WebTestError("curl \(method) \(path) failed with exit status \(process.terminationStatus)")
        }
        let responseBody = (try? String(contentsOfFile: bodyFile, encoding: .utf8)) ?? ""
        var responseHeaders: [String: String] = [:]
        for line in ((try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? "").split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            responseHeaders[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPExchange(status: code, headers: responseHeaders, body: responseBody)
    }

    /// Presses the first button of `page` as a browser would: posts its form with the page's
    /// CSRF token, from this server's origin, with the cookies in `jar`.
    func pressFirstButton(of page: HTTPExchange, cookies jar: String) throws -> (action: String, answer: HTTPExchange) {
        let action = try #require(page.body.firstMatch(of: /<form method="post" action="([^"]+)"/)?.1)
        let csrf = try #require(page.body.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1)
        let answer = try send(
            "POST", String(action), body: "csrf=\(csrf)",
            headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: \(base)"], as: .anonymous, cookies: jar)
        return (String(action), answer)
    }

    /// Polls `GET /api/tasks/{id}` until the task is SUCCESS or FAILED.
    func waitForTerminal(_ id: String, timeout: Duration = .seconds(90)) throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let task = try send("GET", "/api/tasks/\(id)").json ?? .null
            if ["SUCCESS", "FAILED"].contains(task["status"]?.stringValue) { return task }
            guard ContinuousClock.now < deadline else {
                throw WebTestError("task \(id) is still \(task["status"]?.stringValue ?? "unknown") after \(timeout)")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }
}

/// One HTTP answer.
struct HTTPExchange {
    var status: Int
    /// Header names in lower case.
    var headers: [String: String]
    var body: String

    var json: JSONValue? { try? JSONValue(parsing: body) }
    /// The `error` message of a JSON error body.
    var error: String? { json?["error"]?.stringValue }
}

struct WebTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
