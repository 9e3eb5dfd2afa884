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
}
