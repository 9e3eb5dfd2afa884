import Testing
import YADTQCore

@Suite("Retry policy")
struct RetryPolicyTests {
    let policy = RetryPolicy(baseDelay: .milliseconds(100), maxDelay: .milliseconds(350))

    @Test("retries until the last attempt, then fails")
    func attempts() {
        #expect(policy.decide(attempt: 1, maxAttempts: 3, permanent: false) == .retry(after: .milliseconds(100)))
        #expect(policy.decide(attempt: 2, maxAttempts: 3, permanent: false) == .retry(after: .milliseconds(200)))
        #expect(policy.decide(attempt: 3, maxAttempts: 3, permanent: false) == .fail)
        #expect(policy.decide(attempt: 1, maxAttempts: 1, permanent: false) == .fail)
    }

    @Test("a permanent failure is never retried")
    func permanent() {
        #expect(policy.decide(attempt: 1, maxAttempts: 5, permanent: true) == .fail)
    }

    @Test("backoff doubles and is capped")
    func backoff() {
        #expect(policy.delay(afterAttempt: 3) == .milliseconds(350))
        #expect(policy.delay(afterAttempt: 60) == .milliseconds(350))
    }
}

@Suite("Task status and messages")
struct TaskStatusTests {
    @Test("SUCCESS, FAILED and CANCELLED are terminal, with the contract's exact strings")
    func terminal() {
        #expect(TaskStatus.allCases.map(\.rawValue) == ["SCHEDULED", "QUEUED", "PROCESSING", "SUCCESS", "FAILED", "CANCELLED"])
        #expect(TaskStatus.allCases.filter(\.isTerminal) == [.success, .failed, .cancelled])
    }

    @Test("a task message round-trips through its Kafka value")
    func messageRoundTrip() throws {
        let task = TaskMessage(id: "t-1", type: "add", args: [.int(1), .double(2.5), .string("x")], maxAttempts: 5, queuedAt: 42)
        #expect(try TopicMessage.decode(task.encoded()) == .task(task))
        #expect(try TopicMessage.decode(TopicMessage.endMarker("m")) == .end(marker: "m"))
    }

    @Test("the hand-built Kafka value is exactly the task's canonical JSON, escapes included")
    func messageIsCanonicalJSON() {
        let task = TaskMessage(
            id: "a\"b\n", type: "t\u{1}ü", args: [.object(["k": .array([.null, .bool(true)])]), .int(-7)],
            maxAttempts: 3, queuedAt: 1_700_000_000_000)
        #expect(task.encoded() == task.json.jsonBytes)
    }

    @Test("poison messages say why they are not tasks", arguments: [
        ("not json", nil as String?, "not JSON"),
        ("[1,2]", nil, "not an object"),
        (#"{"type":"add"}"#, nil, "no string \"id\""),
        (#"{"id":"a"}"#, "a", "no string \"type\""),
        (#"{"id":"a","type":"add","args":3}"#, "a", "not an array"),
        (#"{"id":"a","type":"add","max_attempts":0}"#, "a", "max_attempts"),
    ])
    func poison(value: String, id: String?, reason: String) {
        #expect {
            _ = try TopicMessage.decode(Array(value.utf8))
        } throws: { error in
            guard let error = error as? TopicMessageError else { return false }
            return error.id == id && error.reason.contains(reason)
        }
    }

    @Test("settings read YADTQ_KAFKA_* pass-through properties and the Redis URL")
    func settings() throws {
        let settings = try YADTQSettings(environment: [
            "YADTQ_KAFKA_SASL_MECHANISM": "PLAIN", "YADTQ_REDIS": "redis://:secret@10.0.0.1:7000/3",
        ])
        #expect(settings.kafkaOverrides == ["sasl.mechanism": "PLAIN"])
        #expect(settings.redis.host == "10.0.0.1" && settings.redis.port == 7000 && settings.redis.database == 3)
        #expect(settings.redis.password == "secret")
        #expect(settings.redis.description == "redis://:***@10.0.0.1:7000/3")
        #expect(throws: YADTQError.self) { try RedisURL(parsing: "http://x") }
    }
}
