import Foundation
import Hummingbird
import YADTQCore

/// A request the server refuses or cannot serve, with the status and a message that says
/// what happened and what to do; the API sends it as `{"error": ..., "details": [...]}`,
/// the pages as an error box.
public struct WebError: Error, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    /// One entry per bad task or line, when there are several.
    public var details: [String] = []
    /// The tasks of a submit that Redis or the broker failed, each with its id: to be
    /// submitted again as they are.
    public var unresolved: UnresolvedSubmit?

    public var description: String { message }

    /// How an error from the core reads to a web client: Redis or broker trouble is a 503.
    static func from(_ error: any Error) -> WebError {
        switch error {
        case let error as WebError:
            return error
        case let error as YADTQError where error.area == .redis || error.area == .kafka:
            return WebError(status: .serviceUnavailable, message: "\(error)")
        case let error as CallDeadline.Expired:
            return WebError(status: .serviceUnavailable, message: "\(error)")
        case let error as TaskStore.InvalidCursor:
            return WebError(status: .badRequest, message: error.description)
        case let error as HTTPError where error.status == .notFound:
            return WebError(status: .notFound, message: error.body ?? "there is no such page or API route")
        case let error as any HTTPResponseError:
            return WebError(status: error.status, message: "\(error.status.code) \(error.status.reasonPhrase)")
        default:
            return WebError(status: .internalServerError, message: "internal error: \(error)")
        }
    }
}

/// The tasks of a submit that Redis or the broker failed, each with the id it has (given or
/// generated), and what is known of them: the answer gives each its `status`.
public struct UnresolvedSubmit: Sendable {
    public enum Status: String, Sendable {
        /// Redis may have queued them before it stopped answering (``SubmissionInput/outcomeUnknown(_:of:)``).
        case unknown = "UNKNOWN"
        /// The submit never reached Redis, so it queued none of them (``SubmissionInput/notSent(_:of:)``).
        case notSent = "NOT_SENT"
    }

    public var tasks: [TaskDeclaration]
    public var status: Status
}

/// Reads the tasks a client submits — a JSON body, the form's single task or its box of
/// task-file lines — and checks them against the plugin folder, so nothing the workers
/// would reject for sure is ever queued.
public enum SubmissionInput {
    /// The largest request body accepted.
    public static let maximumBodyBytes = 1 << 20
    /// The most tasks one request may submit.
    public static let maximumTasks = 10_000
    /// The most problems listed in one answer; the rest are counted.
    private static let maximumDetails = 20

    /// `POST /api/tasks`: one task object, or an array of them, in the task-file JSON form
    /// `{"type": "add", "args": [1, 2], "max_attempts": 3, "id": "optional"}`, with `"delay"`
    /// or `"at"` to start it later (read by ``TaskStart``, as in a task file).
    public static func declarations(json bytes: some Collection<UInt8>) throws(WebError) -> [TaskDeclaration] {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes)
        } catch {
            throw WebError(
                status: .badRequest,
                message: "the body is not valid JSON (\(error)); send a task object "
                    + #"{"type": "add", "args": [1, 2]} or an array of them"#)
        }
        let items: [JSONValue]
        switch value {
        case .array(let elements): items = elements
        case .object: items = [value]
        default:
            throw WebError(status: .badRequest, message: #"send a task object {"type": "add", "args": [1, 2]} or an array of them"#)
        }
        try checkCount(items.count)
        var declarations: [TaskDeclaration] = []
        var problems: [String] = []
        for (index, item) in items.enumerated() {
            do {
                declarations.append(try TaskDeclaration(json: item))
            } catch {
                problems.append(items.count == 1 ? error.reason : "task \(index + 1): \(error.reason)")
            }
        }
        try reject(problems, of: items.count, status: .badRequest)
        do {
            try TaskDeclaration.checkIntegers(in: bytes, parsed: value)
        } catch {
            throw WebError(status: .badRequest, message: error.reason)
        }
        return declarations
    }

    /// The form's single task: a type, its arguments written as in a task file
    /// (`1 2`, `"hello world" 3`, `[1, 2]`), an optional number of attempts and an optional
    /// delay (read by ``TaskStart/delay(_:)``, the rule of a task file's `"delay"`).
    public static func declaration(
        type: String, arguments: String, maxAttempts: String, delay: String = ""
    ) throws(WebError) -> TaskDeclaration {
        guard TaskDeclaration.isValidType(type) else {
            throw WebError(status: .badRequest, message: "choose a task type")
        }
        let parsed: TaskLine
        do {
            parsed = try TaskLine.parse(line: type + " " + arguments)
        } catch {
            throw WebError(status: .badRequest, message: "the arguments cannot be read: \(error.reason)")
        }
        guard case .task(var declaration) = parsed else {
            throw WebError(status: .badRequest, message: "choose a task type")
        }
        let attempts = maxAttempts.trimmingCharacters(in: .whitespaces)
        do {
            declaration.maxAttempts = try TaskDeclaration.readMaxAttempts(text: attempts)
        } catch {
            throw WebError(
                status: .badRequest,
                message: "max attempts must be a whole number from \(TaskDeclaration.allowedMaxAttempts.lowerBound) "
                    + "to \(TaskDeclaration.allowedMaxAttempts.upperBound), or empty for the plugin's default")
        }
        let delay = delay.trimmingCharacters(in: .whitespaces)
        if !delay.isEmpty {
            do {
                declaration.start = try TaskStart.readDelay(.string(delay))
            } catch {
                throw WebError(status: .badRequest, message: "the delay cannot be read: \(error.reason)")
            }
        }
        return declaration
    }

    /// The form's box of task-file lines. Every bad line is reported with its number,
    /// and then none is queued, so a fixed paste can simply be sent again.
    public static func declarations(lines text: String) throws(WebError) -> [TaskDeclaration] {
        var declarations: [TaskDeclaration] = []
        var problems: [String] = []
        for line in TaskFileParser.parse(Array(text.utf8)) {
            switch line.result {
            case .success(.task(let declaration)): declarations.append(declaration)
            case .success(.blank): break
            case .success(.end):
                problems.append("line \(line.number): 'end' stops every worker; use yadtq-run for that")
            case .failure(let error): problems.append("line \(line.number): \(error.reason)")
            }
        }
        try reject(problems, of: declarations.count + problems.count, status: .badRequest)
        guard !declarations.isEmpty else {
            throw WebError(status: .badRequest, message: "there are no tasks in the box: write one task a line, e.g. add 1 2")
        }
        try checkCount(declarations.count)
        return declarations
    }

    /// Checks every task's type against the plugin folder. A task without `max_attempts`
    /// gets its plugin's own from ``TaskPublisher``, as from `yadtq-run`.
    public static func resolve(_ declarations: [TaskDeclaration], with catalog: PluginCatalog) throws(WebError) -> [TaskDeclaration] {
        let known = catalog.plugins.filter(\.isLoaded).map(\.type)
        var problems: [String] = []
        for (index, declaration) in declarations.enumerated() {
            let label = declarations.count == 1 ? "" : "task \(index + 1): "
            guard let plugin = catalog.plugin(declaration.type) else {
                var message = "\(label)unknown task type '\(declaration.type)': there is no \(declaration.type).lua in the plugin folder"
                if let scanError = catalog.scanError {
                    message += " (\(scanError))"
                } else {
                    message += known.isEmpty ? " (it is empty)" : "; known types: \(known.joined(separator: ", "))"
                }
                problems.append(message)
                continue
            }
            if let loadError = plugin.loadError {
                problems.append("\(label)task type '\(plugin.type)' cannot run: its plugin does not load (\(loadError))")
                continue
            }
        }
        try reject(problems, of: declarations.count, status: .unprocessableContent)
        return declarations
    }

    private static func checkCount(_ count: Int) throws(WebError) {
        guard count > 0 else { throw WebError(status: .badRequest, message: "there are no tasks to submit") }
        guard count <= maximumTasks else {
            throw WebError(
                status: .contentTooLarge,
                message: "\(count) tasks in one request is too many: send at most \(maximumTasks) at a time")
        }
    }

    /// A submission ``TaskPublisher`` refused, having queued nothing, because a task's message
    /// would be larger than the producer sends.
    static func tooLarge(_ error: TaskPublisher.TooLarge, of total: Int) -> WebError {
        refusal(error.refused.map { total == 1 ? $0.reason : $0.text }, of: total, status: .contentTooLarge)
    }

    /// A submit that Redis or the broker failed: 503 with its tasks, each with the id it has
    /// (given or generated), since Redis may have queued them before it stopped answering. Sent
    /// again under those ids, a task that was queued answers DUPLICATE and the others are queued.
    static func outcomeUnknown(_ error: YADTQError, of declarations: [TaskDeclaration]) -> WebError {
        WebError(
            status: .serviceUnavailable,
            message: "\(error). Whether the tasks were queued is unknown: Redis may have queued them before it "
                + "stopped answering. Once it answers, submit them again under the same ids (each task's id is in `tasks`; "
                + "on the page, in the box below): a task that was queued answers DUPLICATE and is not queued twice",
            unresolved: UnresolvedSubmit(tasks: declarations, status: .unknown))
    }

    /// A submit whose time ran out while the submits and retries ahead of it waited for Redis:
    /// 503 with its tasks, none of which it sent, so none of which it queued.
    static func notSent(_ error: CallDeadline.Expired, of declarations: [TaskDeclaration]) -> WebError {
        WebError(
            status: .serviceUnavailable,
            message: "\(error). None of the tasks was queued by this submit. Once Redis answers, submit them again as "
                + "they are (each task's id is in `tasks`; on the page, in the box below)",
            unresolved: UnresolvedSubmit(tasks: declarations, status: .notSent))
    }

    private static func reject(_ problems: [String], of total: Int, status: HTTPResponse.Status) throws(WebError) {
        if !problems.isEmpty { throw refusal(problems, of: total, status: status) }
    }

    /// The answer to `problems` (at least one) among `total` tasks.
    private static func refusal(_ problems: [String], of total: Int, status: HTTPResponse.Status) -> WebError {
        if problems.count == 1 && total == 1 { return WebError(status: status, message: problems[0]) }
        var details = Array(problems.prefix(maximumDetails))
        if problems.count > maximumDetails { details.append("… and \(problems.count - maximumDetails) more") }
        return WebError(
            status: status,
            message: "\(problems.count) of \(total) tasks cannot be submitted, so none was; fix them and send again",
            details: details)
    }
}
