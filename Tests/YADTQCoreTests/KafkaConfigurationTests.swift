import Testing
import YADTQCore

@Suite("Kafka client configuration")
struct KafkaConfigurationTests {
    @Test("an override librdkafka does not know is refused, naming it")
    func unknownOverride() throws {
        // No broker is contacted: the handles are made and freed at once.
        _ = try KafkaProducer(settings: YADTQSettings(environment: ["YADTQ_BROKERS": "127.0.0.1:9"]), clientID: "configuration-test")
        let settings = try YADTQSettings(environment: ["YADTQ_BROKERS": "127.0.0.1:9", "YADTQ_KAFKA_YADTQ_NO_SUCH_PROPERTY": "1"])
        let error = #expect(throws: YADTQError.self) { try KafkaProducer(settings: settings, clientID: "configuration-test") }
        #expect(error.map { "\($0)" }?.contains("yadtq.no.such.property=1") == true)
    }

    @Test("overrides are set after every default, so one under an alias of a default's name wins")
    func overridesLast() {
        let ordered = KafkaProperties.ordered(
            defaults: ["message.timeout.ms": "30000", "linger.ms": "5", "acks": "all"], brokers: "b:9092",
            overrides: ["delivery.timeout.ms": "120000", "acks": "1", "bootstrap.servers": "other:9092"])
        #expect(ordered.map(\.key) == ["linger.ms", "message.timeout.ms", "acks", "bootstrap.servers", "delivery.timeout.ms"])
        #expect(ordered.map(\.value) == ["5", "30000", "1", "other:9092", "120000"])
        #expect(ordered.map(\.isOverride) == [false, false, true, true, true])
    }
}
