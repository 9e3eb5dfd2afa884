import ArgumentParser
import YADTQCore

/// Refuses a topic given on the command line that breaks ``TopicName``'s rule, before the
/// command connects to anything: `name` says where it was given (`--topic`, `the topic`).
public func validateTopic(_ topic: String?, _ name: String) throws {
    if let topic, let problem = TopicName.problem(with: topic) { throw ValidationError("\(name): \(problem)") }
}
