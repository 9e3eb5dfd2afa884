import Testing
import YADTQCore

@Suite("Publisher rules")
struct PublisherRulesTests {
    @Test("a task the broker did not take says why and what to do")
    func notPublishedSaysWhatToDo() {
        let text = TaskPublisher.notPublished(id: "task-7", topic: "tasks", reason: "Local: Message timed out (librdkafka code -192)")
        #expect(text.hasPrefix("could not be published to tasks: Local: Message timed out (librdkafka code -192)"))
        #expect(text.contains("Check the broker"), "\(text)")
        #expect(text.hasSuffix("yadtq-ctl retry task-7"), "\(text)")
    }
}
