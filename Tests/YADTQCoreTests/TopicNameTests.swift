import Testing
import YADTQCore

@Suite("Topic names")
struct TopicNameTests {
    @Test("Kafka's topic names pass, with room left for the dead-letter topic")
    func valid() {
        for topic in ["tasks", "t", "a.b_c-D9", "...", ".hidden", String(repeating: "x", count: 245)] {
            #expect(TopicName.problem(with: topic) == nil, "\(topic)")
        }
        #expect(TopicName.maximumLength + TopicName.deadLetterSuffix.count == TopicName.maximumKafkaLength)
    }

    @Test("a name Kafka refuses, or whose .dlq name it would refuse, is refused saying what is allowed")
    func invalid() throws {
        let cases: [(topic: String, says: String)] = [
            ("", "the topic name is empty"),
            (".", "the topic cannot be '.'"),
            ("..", "the topic cannot be '..'"),
            ("my tasks", "has ' ' in it"),
            ("tasks/1", "has '/' in it"),
            ("tâches", "has U+E2 in it"),
            ("a\u{1B}[2J", "has U+1B in it"),
            (String(repeating: "x", count: 246), "is 246 characters long"),
            (String(repeating: "x", count: 250), "is 250 characters long"),
        ]
        for (topic, says) in cases {
            let problem = try #require(TopicName.problem(with: topic), "\(topic) must be refused")
            #expect(problem.contains(says), "\(problem)")
            #expect(problem.contains("a topic is 1 to 245 ASCII letters, digits, '.', '_' and '-', other than '.' and '..'"))
            #expect(!problem.contains("\u{1B}"), "the name is shown escaped")
        }
    }

    @Test("YADTQ_TOPIC is held to the same rule")
    func environment() throws {
        #expect(try YADTQSettings(environment: ["YADTQ_TOPIC": "jobs.v2"]).topic == "jobs.v2")
        let error = #expect(throws: YADTQError.self) { try YADTQSettings(environment: ["YADTQ_TOPIC": "my tasks"]) }
        #expect(error.map { "\($0)" }?.contains("YADTQ_TOPIC: the topic 'my tasks' has ' ' in it") == true)
    }
}
