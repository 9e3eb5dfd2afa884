import Foundation
import Testing
import YADTQCore

@Suite("Errors of any size fit the dead-letter topic and Redis")
struct ErrorSizeTests {
    @Test("an error over the limit is cut at a character boundary to the limit, the note included, and says by how much")
    func trimmed() {
        #expect(ErrorText.trimmed("short") == "short")
        let huge = String(repeating: "E", count: 1_100_000)
        let kept = ErrorText.trimmed(huge)
        #expect(kept.utf8.count == ErrorText.maximumBytes)
        #expect(kept == String(repeating: "E", count: 65486) + "… [trimmed: 1100000 bytes, the first 65486 kept]")
        let accents = ErrorText.trimmed(String(repeating: "é", count: 100), limit: 98)
        #expect(accents == String(repeating: "é", count: 27) + "… [trimmed: 200 bytes, the first 54 kept]", "\(accents)")
    }

    /// The one rule both entry points share: errors as Swift strings, and bytes from Lua
    /// (messages, tracebacks, log lines).
    @Test("trimming keeps within the limit, note included, at a character boundary: exact fit, empty, a cut inside a character")
    func trimmingBoundaries() {
        func bytes(_ raw: [UInt8], _ limit: Int, extent: ErrorText.Extent = .whole) -> String {
            raw.withUnsafeBytes { ErrorText.trimmed($0, limit: limit, extent: extent) }
        }
        // Empty, and an exact fit: kept whole, no note.
        #expect(ErrorText.trimmed("", limit: 0) == "")
        #expect(bytes([], 0) == "")
        let fifty = String(repeating: "é", count: 25)
        #expect(ErrorText.trimmed(fifty, limit: 50) == fifty)
        #expect(bytes(Array(fifty.utf8), 50) == fifty)
        // One byte over: cut, with the original length, to the limit at most.
        let over = String(repeating: "a", count: 101)
        #expect(ErrorText.trimmed(over, limit: 100) == String(repeating: "a", count: 56) + "… [trimmed: 101 bytes, the first 56 kept]")
        #expect(bytes(Array(over.utf8), 100) == ErrorText.trimmed(over, limit: 100))
        #expect(bytes(Array(over.utf8), 100, extent: .unknown) == String(repeating: "a", count: 47) + "… [trimmed: at least 101 bytes, the first 47 kept]")
        #expect(bytes(Array(over.utf8), 100, extent: .beginning(ofBytes: 5000)) == String(repeating: "a", count: 55) + "… [trimmed: 5000 bytes, the first 55 kept]")
        // The beginning of a longer text says so even when it would fit; a buffer of unknown
        // extent that fits is whole.
        #expect(bytes(Array("abc".utf8), 100, extent: .beginning(ofBytes: 5000)) == "abc… [trimmed: 5000 bytes, the first 3 kept]")
        #expect(bytes(Array("abc".utf8), 100, extent: .unknown) == "abc")
        // Every limit, so the cut falls inside 2-, 3- and 4-byte characters: never half a
        // character, never over the limit, and always the beginning of the text.
        let mixed = String(repeating: "aé€😀", count: 20)
        for limit in 0...mixed.utf8.count + 1 {
            for kept in [ErrorText.trimmed(mixed, limit: limit), bytes(Array(mixed.utf8), limit)] {
                #expect(kept.utf8.count <= limit, "limit \(limit): \(kept.utf8.count) bytes")
                #expect(!kept.contains("\u{FFFD}"), "limit \(limit)")
                let text = kept.components(separatedBy: "… [trimmed: ").first ?? kept
                #expect(mixed.hasPrefix(text), "limit \(limit)")
                #expect(kept == mixed || kept.hasSuffix(" kept]") || limit < 44, "limit \(limit): a note once it fits")
            }
        }
        // A limit too small for the note: the beginning alone, within the limit.
        #expect(ErrorText.trimmed("ééé", limit: 5) == "éé")
        #expect(bytes(Array("😀".utf8), 3) == "")
        // Invalid UTF-8 is replaced, and the replacements count against the limit too.
        #expect(bytes([0xFF, 0xFF], 6) == "\u{FFFD}\u{FFFD}")
        #expect(bytes([0xFF, 0xFF], 5) == "\u{FFFD}")
        let invalid = bytes([UInt8](repeating: 0xFF, count: 100), 100)
        #expect(invalid.utf8.count <= 100 && invalid.hasSuffix("… [trimmed: 100 bytes, the first 54 kept]"), "\(invalid)")
    }

    @Test("a dead-letter copy of a task with a 1.1 MB error and 1.1 MB of arguments stays under the limit")
    func deadLetterCopy() throws {
        let message = TaskMessage(
            id: "big-1", type: "fail", args: [.string(String(repeating: "A", count: 1_100_000))], maxAttempts: 3,
            queuedAt: 1)
        let value = DeadLetterCopy.value(
            of: message, error: String(repeating: "\u{1}", count: 1_100_000), attempts: 3, worker: "w1", failedAt: 2)
        #expect(value.count <= DeadLetterCopy.maximumBytes)
        let copy = try JSONValue(parsing: value)
        #expect(copy["id"] == "big-1")
        #expect(copy["attempts"] == .int(3))
        #expect(copy["error"]?.stringValue?.contains("… [trimmed: 1100000 bytes, the first ") == true)
        #expect(copy["args"]?.stringValue?.contains("too large for the dead-letter topic") == true)

        let small = DeadLetterCopy.value(of: message.with(args: [1]), error: "boom", attempts: 1, worker: "w1", failedAt: 2)
        #expect(try JSONValue(parsing: small)["args"] == [1])
        #expect(try JSONValue(parsing: small)["error"] == "boom")
    }
}

extension TaskMessage {
    fileprivate func with(args: [JSONValue]) -> TaskMessage {
        var copy = self
        copy.args = args
        return copy
    }
}

@Suite("Producer and worker agree on how deep arguments may nest")
struct NestingDepthTests {
    static func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }

    @Test("the deepest argument the producer accepts is read back by the worker")
    func deepestAccepted() throws {
        let depth = TaskMessage.maximumArgumentDepth
        guard case .task(let declaration) = try TaskLine.parse(line: "echo " + Self.nested(depth)) else {
            Issue.record("not a task")
            return
        }
        let message = TaskMessage(id: "deep", type: "echo", args: declaration.args, maxAttempts: 3, queuedAt: 0)
        #expect(try TopicMessage.decode(message.encoded()) == .task(message))
    }

    @Test("one level deeper is refused with the argument's number, in both line forms")
    func deeperRefused() {
        let depth = TaskMessage.maximumArgumentDepth + 1
        do {
            _ = try TaskLine.parse(line: "echo 1 " + Self.nested(depth))
            Issue.record("accepted")
        } catch {
            #expect(error.kind == .nestedTooDeep)
            #expect(error.reason.hasPrefix("argument 2 nests arrays and objects \(depth) levels deep"), "\(error)")
        }
        // In the JSON form the line itself takes two levels, so the same limit holds.
        let json = { (depth: Int) in #"{"type": "echo", "args": [1, \#(Self.nested(depth))]}"# }
        #expect(throws: TaskLineError.self) { try TaskLine.parse(line: json(depth)) }
        #expect((try? TaskLine.parse(line: json(depth - 1))) != nil)
        let lines = TaskFileParser.parse(Array(("add 1 2\necho " + Self.nested(511) + "\n").utf8))
        #expect(lines.count == 2)
        #expect((try? lines[0].result.get()) != nil, "line 1 still goes through")
        #expect((try? lines[1].result.get()) == nil, "line 2 is reported")
    }

    @Test("a message too deep for the worker is poison under its own id")
    func poisonKeepsItsID() {
        let message = #"{"args": [\#(Self.nested(600))], "id": "deep-1", "type": "echo"}"#
        do {
            _ = try TopicMessage.decode(Array(message.utf8))
            Issue.record("decoded")
        } catch {
            #expect(error.id == "deep-1")
            #expect(error.reason.contains("nested deeper than 512"))
        }
        let idFirst = #"{"id": "deep-2", "args": [\#(Self.nested(600))]"#
        #expect(throws: TopicMessageError(id: "deep-2", reason: "")) { try Self.decodeID(idFirst) }
        let nestedID = #"{"args": [{"id": "inner"}, \#(Self.nested(600))], "type": "id"}"#
        #expect(throws: TopicMessageError(id: nil, reason: "")) { try Self.decodeID(nestedID) }
        let badID = #"{"id": "a b", "args": [\#(Self.nested(600))]}"#
        #expect(throws: TopicMessageError(id: nil, reason: "")) { try Self.decodeID(badID) }
    }

    /// Decodes and rethrows with the reason blanked, to compare ids only.
    static func decodeID(_ text: String) throws(TopicMessageError) {
        do {
            _ = try TopicMessage.decode(Array(text.utf8))
        } catch {
            throw TopicMessageError(id: error.id, reason: "")
        }
    }
}

@Suite("Ids and types from Kafka are checked like the producer checks them")
struct TopicMessageValidationTests {
    @Test("a control character or a 100 KB id makes the message poison without that id")
    func invalidIDs() {
        for id in ["bad\u{1B}[2Jid", String(repeating: "x", count: 100_000), "with space"] {
            let value = TaskMessage(id: id, type: "echo", args: [], maxAttempts: 3, queuedAt: 0).encoded()
            do {
                _ = try TopicMessage.decode(value)
                Issue.record("accepted \(id.prefix(20))")
            } catch {
                #expect(error.id == nil)
                #expect(error.reason.hasPrefix("invalid task id"), "\(error)")
                #expect(!error.reason.contains("\u{1B}"))
                #expect(error.reason.utf8.count < 300)
            }
        }
    }

    @Test("an invalid type is poison under the task's id")
    func invalidType() {
        let value = TaskMessage(id: "t1", type: "../evil", args: [], maxAttempts: 3, queuedAt: 0).encoded()
        #expect(throws: TopicMessageError.self) { try TopicMessage.decode(value) }
        #expect((try? TopicMessage.decode(value)) == nil)
        do {
            _ = try TopicMessage.decode(value)
        } catch {
            #expect(error.id == "t1")
            #expect(error.reason.hasPrefix("invalid task type"))
        }
    }
}

@Suite("Terminal output escapes control characters")
struct TerminalTextTests {
    @Test("escape sequences, line breaks and bidi controls become visible text; letters stay")
    func escapes() {
        #expect(TerminalText.escaped("fib \"\u{1B}[2J\"") == #"fib "\e[2J""#)
        #expect(TerminalText.escaped("a\nb\tc\rd\u{7}\u{9B}\u{202E}") == #"a\nb\tc\rd\u{7}\u{9b}\u{202e}"#)
        #expect(TerminalText.escaped("héllo wörld ✓") == "héllo wörld ✓")
    }

    @Test("the monitor's table escapes a worker name from Redis")
    func fleetTable() {
        let beat = Heartbeat(
            lastHeartbeat: 0, state: .idle, currentTask: nil, taskStartedAt: nil, pid: 1, host: "h", startedAt: 0,
            timeLimitMilliseconds: nil, intervalMilliseconds: nil)
        let snapshot = FleetSnapshot(
            at: 0, namespace: "ns", topic: "t",
            workers: [WorkerReport(name: "evil\u{1B}[2J", heartbeat: beat, judgement: WorkerJudgement(.alive))],
            counts: [:], tasksPerSecond: 0, rateWindowSeconds: 1, orphaned: [], orphanCount: 0, orphanScanLimit: 10,
            endOfStream: nil, changes: [])
        let text = FleetTable.render(snapshot)
        #expect(!text.contains("\u{1B}"))
        #expect(text.contains(#"evil\e[2J"#))
    }
}

@Suite("Redis error replies are named for what they mean")
struct RedisErrorReplyTests {
    @Test("each refusal gets its kind and a remedy that is not 'report a bug'")
    func classify() {
        let cases: [(String, RedisErrorReply.Kind)] = [
            ("OOM command not allowed when used memory > 'maxmemory'.", .outOfMemory),
            ("NOAUTH Authentication required.", .authenticationRequired),
            ("WRONGPASS invalid username-password pair or user is disabled.", .wrongPassword),
            ("ERR invalid password", .wrongPassword),
            ("READONLY You can't write against a read only replica.", .readOnly),
            ("LOADING Redis is loading the dataset in memory", .loading),
            ("BUSY Redis is busy running a script.", .busy),
            ("NOSCRIPT No matching script.", .noScript),
            ("MISCONF Redis is configured to save RDB snapshots", .persistenceFailing),
            ("NOREPLICAS Not enough good replicas to write.", .tooFewReplicas),
            ("ERR max number of clients reached", .tooManyClients),
            ("ERR unknown command 'EVALSHA', with args beginning with:", .scriptingUnavailable),
            ("ERR something else", .other),
            // Redis 5 and 6 wrap a refusal met inside a script.
            (
                "ERR Error running script (call to f_8e1f): @user_script:12: @user_script: 12: -OOM command not allowed "
                    + "when used memory > 'maxmemory'.", .outOfMemory
            ),
            ("ERR Error running script (call to f_8e1f): @user_script:3: -NOPERM this user has no permissions", .noPermission),
            ("ERR Error running script (call to f_8e1f): @user_script:3: Script attempted to access a non local key", .slotMoving),
        ]
        for (message, kind) in cases {
            let reply = RedisErrorReply(message)
            #expect(reply.kind == kind, "\(message)")
            if kind != .other { #expect(!reply.remedy.contains("YADTQ bug"), "\(message)") }
        }
        let full = RedisErrorReply("OOM command not allowed when used memory > 'maxmemory'.").error("Redis script 'queue' failed")
        #expect(full.description.contains("Redis is full"))
        #expect(full.description.contains("maxmemory"))
        #expect(full.description.contains("YADTQ_KEEP_SUCCEEDED"))
        #expect(full.libraryMessage?.hasPrefix("OOM") == true)
        #expect(RedisErrorReply("LOADING x").isTransient && !RedisErrorReply("OOM x").isTransient)
    }

    @Test("a Redis at its maxclients is waited out; the remedy says to raise maxclients or open fewer connections")
    func tooManyClients() {
        let refusal = RedisErrorReply("ERR max number of clients reached")
        #expect(refusal.isTransient)
        #expect(!refusal.refusesEveryClient, "the clients already connected are served")
        #expect(refusal.remedy.contains("maxclients") && refusal.remedy.contains("fewer"), "\(refusal.remedy)")
        let error = refusal.error("Redis script 'begin' failed")
        #expect(error.description.contains("(ERR max number of clients reached)"), "\(error)")
        #expect(!error.description.contains("YADTQ bug"), "\(error)")
    }

    @Test("a script that meets a slot being moved says that resharding under YADTQ is not supported, and what to do")
    func slotBeingMoved() {
        for message in [
            "ERR Script attempted to access a non local key in a cluster node script: 8e1f0c2a, on @user_script:40.",
            "ERR Error running script (call to f_8e1f): @user_script:40: @user_script: 40: "
                + "Lua script attempted to access a non local key in a cluster node",
        ] {
            let refusal = RedisErrorReply(message)
            #expect(!refusal.isTransient, "\(message)")
            #expect(refusal.meaning.contains("moved"), "\(refusal.meaning)")
            #expect(
                refusal.remedy.contains("Stop the workers and producers") && refusal.remedy.contains("reshard")
                    && refusal.remedy.contains("start them again"), "\(refusal.remedy)")
        }
    }

    @Test("a master short of replicas (min-replicas-to-write) refuses every writer; the remedy says which setting")
    func tooFewReplicas() {
        let refusal = RedisErrorReply("NOREPLICAS Not enough good replicas to write.")
        #expect(refusal.refusesEveryClient && !refusal.isTransient)
        #expect(refusal.remedy.contains("min-replicas-to-write") && !refusal.remedy.contains("YADTQ bug"), "\(refusal.remedy)")
    }
}

@Suite("Redis memory")
struct RedisMemoryTests {
    @Test("how full a master is, said in one line, with a warning from 90 % on")
    func fullness() {
        let node = RedisURL.Node(host: "10.0.0.5", port: 6379)
        let unbounded = RedisMemory(node: node, used: 12_897_484, limit: 0)
        #expect(unbounded.summary == "12.3 MiB (no maxmemory)" && unbounded.fullness == nil && unbounded.warning == nil)
        let roomy = RedisMemory(node: node, used: 12_897_484, limit: 20 * 1_048_576)
        #expect(roomy.summary == "12.3 MiB of 20.0 MiB maxmemory (61 %)" && roomy.warning == nil)
        let nearly = RedisMemory(node: node, used: 19 * 1_048_576, limit: 20 * 1_048_576)
        #expect(nearly.warning?.hasPrefix("Redis at 10.0.0.5:6379 is nearly full: 19.0 MiB of 20.0 MiB maxmemory (95 %)") == true)
        #expect(nearly.warning?.contains("yadtq-ctl purge") == true)
        let full = RedisMemory(node: node, used: 21 * 1_048_576, limit: 20 * 1_048_576)
        #expect(full.warning?.contains("is full and refuses writes: 21.0 MiB of 20.0 MiB maxmemory (full)") == true)
    }
}

@Suite("Web request rules")
struct WebRequestRuleTests {
    @Test("every spelling of a path normalises to the one the router matches")
    func paths() {
        #expect(WebPath.normalised("//api/tasks") == "/api/tasks")
        #expect(WebPath.normalised("/api//tasks/") == "/api/tasks")
        #expect(WebPath.normalised("/./api/./tasks") == "/api/tasks")
        #expect(WebPath.normalised("/static/../api/tasks") == "/api/tasks")
        #expect(WebPath.normalised("/../../api") == "/api")
        #expect(WebPath.normalised("") == "/")
        #expect(WebPath.normalised("/tasks/abc") == "/tasks/abc")
    }

    @Test("only the hosts the server serves are allowed, with any port")
    func hosts() throws {
        let hosts = HostAllowList(listeningOn: "127.0.0.1")
        for allowed in ["localhost", "localhost:8080", "127.0.0.1:9", "[::1]:8080", "[::1]", "LOCALHOST."] {
            #expect(hosts.allows(allowed), "\(allowed)")
        }
        for refused in ["rebind.example", "rebind.example:8080", "localhost.evil.example", "127.0.0.1.evil", "", "a b",
            "localhost:80x"] {
            #expect(!hosts.allows(refused), "\(refused)")
        }
        #expect(!hosts.allows(nil))
        let configured = HostAllowList(listeningOn: "0.0.0.0", extra: try HostAllowList.patterns(parsing: "tasks.example.com, .corp.example,::2"))
        #expect(configured.allows("tasks.example.com:443"))
        #expect(configured.allows("corp.example") && configured.allows("a.b.corp.example"))
        #expect(!configured.allows("evilcorp.example"))
        #expect(configured.allows("[::2]:80"))
        #expect(configured.allows("0.0.0.0:8080"))
        #expect(HostAllowList(listeningOn: "127.0.0.1", extra: ["*"]).allows("anything.example"))
        #expect(HostAllowList(listeningOn: "web.internal").allows("web.internal:8080"))
    }
}

@Suite("Worker start-up checks")
struct WorkerStartupTests {
    @Test("a missing plugin folder is refused with its name and how to fix it")
    func missingPluginFolder() throws {
        let missing = "/nonexistent/yadtq-plugins-\(UUID().uuidString)"
        #expect(throws: YADTQError.self) { try WorkerPreflight.checkPluginFolder(missing) }
        do {
            try WorkerPreflight.checkPluginFolder(missing)
        } catch let error as YADTQError {
            #expect(error.message == "the plugin folder \(missing) does not exist")
            #expect(error.remedy?.contains("--plugins DIR or YADTQ_PLUGINS=DIR") == true)
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("yadtq-plugin-file-\(UUID().uuidString)")
        try Data().write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(throws: YADTQError.self) { try WorkerPreflight.checkPluginFolder(file.path) }
        try WorkerPreflight.checkPluginFolder(FileManager.default.temporaryDirectory.path)
    }
}
