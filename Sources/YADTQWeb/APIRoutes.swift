import Hummingbird
import YADTQCore

/// The JSON API: submit tasks, read one task or a filtered page of them, the workers,
/// the counts and throughput, and the health check.
struct APIRoutes {
    let backend: WebBackend

    func register(on router: Router<WebRequestContext>) {
        var routes = MethodTable(router: router)
        routes.get("/healthz") { _, _ in await health() }
        routes.post("/api/tasks") { request, _ in try await submit(request) }
        routes.get("/api/tasks") { request, _ in try await list(request) }
        routes.get("/api/tasks/{id}") { request, context in try await task(try TaskFilter.taskID(request, context)) }
        routes.post("/api/tasks/{id}/cancel") { request, context in
            let id = try TaskFilter.taskID(request, context)
            return try Self.json(id: id, change: await backend.cancel(id))
        }
        routes.post("/api/tasks/retry") { request, _ in try await retryAll(request) }
        // The router takes the literal segment above over `{id}` whatever the method, so the
        // task whose id is `retry` (a valid one) is read here.
        routes.get("/api/tasks/retry") { _, _ in try await task("retry") }
        routes.post("/api/tasks/{id}/retry") { request, context in
            let id = try TaskFilter.taskID(request, context)
            return try Self.json(id: id, change: await backend.retry(id))
        }
        routes.get("/api/workers") { _, _ in try await workers() }
        routes.get("/api/stats") { _, _ in try await stats() }
        routes.get("/api/types") { _, _ in await types() }
        routes.refuseOtherMethods()
    }

    /// 200 when Redis answers, else 503 with the reason; the broker is checked on submit.
    private func health() async -> Response {
        do {
            try await backend.read { try $0.ping() }
            return WebResponse.json(["status": "ok", "redis": "ok"])
        } catch {
            return WebResponse.json(
                ["status": "unavailable", "redis": .string("\(error)")], status: .serviceUnavailable)
        }
    }

    /// 415 unless the body is declared JSON.
    private static func requireJSON(_ request: Request, what: String) throws(WebError) {
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            throw WebError(
                status: .unsupportedMediaType,
                message: "send the \(what) as JSON with the header Content-Type: application/json")
        }
    }

    /// `POST /api/tasks`: each task's id, status and page; 4xx when any task is invalid.
    private func submit(_ request: Request) async throws -> Response {
        try Self.requireJSON(request, what: "tasks")
        let parsed = try SubmissionInput.declarations(json: try await RequestBodyReader.collect(request))
        let declarations = try SubmissionInput.resolve(parsed, with: await backend.plugins())
        let published = try await backend.publish(declarations)
        return WebResponse.json(["tasks": .array(published.map(Self.json))], status: Self.status(of: published))
    }

    /// 202 when a task was taken; 200 when every task already existed (a client sending a
    /// submission again that went through before: retrying it on 503 would never end);
    /// 503 only when the broker refused every task it could have taken.
    static func status(of published: [PublishedTask]) -> HTTPResponse.Status {
        if published.contains(where: { $0.outcome.isAccepted }) { return .accepted }
        return published.allSatisfy { $0.outcome == .duplicate } ? .ok : .serviceUnavailable
    }

    /// `POST /api/tasks/{id}/cancel|retry`: 200 with what changed; 404 for an unknown id,
    /// 409 when the task's status does not allow it, 503 when a retry could not be published.
    static func json(id: String, change: TaskStore.OperatorChange) throws(WebError) -> Response {
        let status: HTTPResponse.Status
        switch change {
        case .cancelled, .cancelRequested, .requeued: status = .ok
        case .publishFailed: status = .serviceUnavailable
        case .missing: throw WebError(status: .notFound, message: "no task with id '\(id)'")
        case .unchanged: status = .conflict
        }
        return WebResponse.json(change.json(id: id), status: status)
    }

    /// `POST /api/tasks/retry` with a filter `{"status": "FAILED", "type": "div", "since": "1h"}`
    /// (``RetryFilter``): queues again and publishes the matching kept tasks, newest first, at
    /// most ``WebBackend/bulkRetryLimit`` per request. 200 with `matched`, `requeued`, `more`
    /// (send it again for the rest) and each task's change; 400 for a bad filter, changing nothing.
    private func retryAll(_ request: Request) async throws -> Response {
        try Self.requireJSON(request, what: "filter")
        let body = try await RequestBodyReader.collect(request)
        let filter: RetryFilter
        do {
            filter = try RetryFilter(json: try JSONValue(parsing: body))
        } catch let error as RetryFilter.Invalid {
            throw WebError(status: .badRequest, message: error.description)
        } catch {
            throw WebError(
                status: .badRequest,
                message: #"the body is not valid JSON (\#(error)); send a filter such as {"status": "FAILED", "type": "div", "since": "1h"}"#)
        }
        let bulk = try await backend.retry(matching: filter, limit: WebBackend.bulkRetryLimit)
        let requeued = bulk.changes.filter { $0 == .requeued }.count
        return WebResponse.json([
            "matched": .int(Int64(bulk.ids.count)), "requeued": .int(Int64(requeued)), "more": .bool(bulk.more),
            "tasks": .array(zip(bulk.ids, bulk.changes).map { $1.json(id: $0) }),
        ])
    }

    /// How one submitted task went: QUEUED with its partition, SCHEDULED with its due time,
    /// DUPLICATE, or FAILED with the reason.
    static func json(_ task: PublishedTask) -> JSONValue {
        var fields: [String: JSONValue] = [
            "id": .string(task.message.id), "type": .string(task.message.type),
            "max_attempts": .int(Int64(task.message.maxAttempts)), "url": .string(URLText.task(task.message.id)),
        ]
        switch task.outcome {
        case .published(let partition):
            fields["status"] = "QUEUED"
            fields["partition"] = .int(Int64(partition))
        case .scheduled(let dueAt):
            fields["status"] = "SCHEDULED"
            fields["due_at"] = .int(dueAt)
        case .duplicate:
            fields["status"] = "DUPLICATE"
            fields["error"] = "a task with this id already exists; it was left alone"
        case .failed(let reason):
            fields["status"] = "FAILED"
            fields["error"] = .string(reason)
        }
        return .object(fields)
    }

    /// `GET /api/tasks?status=&type=&cursor=&limit=`: newest first, with the counts per status.
    private func list(_ request: Request) async throws -> Response {
        let filter = try TaskFilter(request)
        let (page, counts) = try await backend.read { store in
            (try filter.page(store), try store.counts())
        }
        return WebResponse.json([
            "tasks": .array(page.records.map { TaskPresentation.json($0) }),
            "next_cursor": page.nextCursor.map(JSONValue.string) ?? .null,
            "total": .int(Int64(page.total)),
            "counts": Self.json(counts),
        ])
    }

    /// `GET /api/tasks/{id}`: the whole record, or 404 for an id Redis does not know.
    private func task(_ id: String) async throws -> Response {
        guard let record = try await backend.read({ try $0.record(id: id) }) else {
            throw WebError(
                status: .notFound,
                message: "no task with id '\(id)': it was never submitted under this namespace, or Redis lost it")
        }
        return WebResponse.json(TaskPresentation.json(record))
    }

    private func workers() async throws -> Response {
        let now = currentEpochMilliseconds()
        let workers = WorkerView.listed(
            try await backend.read { try $0.workerHeartbeats() }.map { WorkerView($0, now: now) })
        return WebResponse.json(["workers": .array(workers.map(TaskPresentation.json))])
    }

    /// `GET /api/stats`: counts per status and type, finished tasks per 10 s over 10 minutes,
    /// workers, and how full each Redis master is.
    private func stats() async throws -> Response {
        let snapshot = try await DashboardSnapshot.read(from: backend)
        return WebResponse.json([
            "counts": Self.json(snapshot.counts),
            "total": .int(Int64(snapshot.counts.values.reduce(0, +))),
            "types": .object(snapshot.typeCounts.mapValues { .int(Int64($0)) }),
            "throughput": [
                "bucket_seconds": .int(Int64(DashboardSnapshot.bucketSeconds)),
                "buckets": .array(
                    snapshot.throughput.map { bucket in
                        [
                            "start": .int(bucket.start), "succeeded": .int(Int64(bucket.succeeded)),
                            "failed": .int(Int64(bucket.failed)),
                        ]
                    }),
            ],
            "workers": .object(
                Dictionary(grouping: snapshot.workers, by: \.verdict.rawValue).mapValues { .int(Int64($0.count)) }),
            "redis_memory": .array(snapshot.redisMemory.map(\.json)),
        ])
    }

    /// `GET /api/types`: the task types of the plugin folder with their metadata.
    private func types() async -> Response {
        let catalog = await backend.plugins()
        let types: [JSONValue] = catalog.plugins.map { plugin in
            [
                "type": .string(plugin.type), "description": plugin.description.map(JSONValue.string) ?? .null,
                "args": plugin.args.map(JSONValue.string) ?? .null,
                "max_attempts": plugin.maxAttempts.map { .int(Int64($0)) } ?? .null,
                "timeout_seconds": plugin.timeoutSeconds.map(JSONValue.double) ?? .null,
                "load_error": plugin.loadError.map { .string($0.description) } ?? .null,
            ]
        }
        return WebResponse.json(["types": .array(types)])
    }

    static func json(_ counts: [TaskStatus: Int]) -> JSONValue {
        .object(Dictionary(uniqueKeysWithValues: TaskStatus.allCases.map { ($0.rawValue, .int(Int64(counts[$0] ?? 0))) }))
    }
}

/// The status, type, cursor and page size of a task listing, from the query string,
/// checked so a typo is a 400 with a message rather than an empty page.
struct TaskFilter: Sendable {
    static let defaultLimit = 25
    static let maximumLimit = 500

    var status: TaskStatus?
    var type: String?
    var cursor: String?
    var limit = defaultLimit

    init(_ request: Request) throws(WebError) {
        func value(_ name: String) -> String? {
            request.query(name).flatMap { $0.isEmpty ? nil : $0 }
        }
        if let text = value("status") {
            guard let status = TaskStatus(rawValue: text.uppercased()) else {
                throw WebError(
                    status: .badRequest,
                    message: "unknown status '\(text)': use one of \(TaskStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.status = status
        }
        if let text = value("type") {
            if let problem = TaskDeclaration.typeFilterProblem(text) {
                throw WebError(status: .badRequest, message: problem)
            }
            type = text
        }
        cursor = value("cursor")
        if let text = value("limit") {
            guard let limit = Int(text), (1...Self.maximumLimit).contains(limit) else {
                throw WebError(status: .badRequest, message: "limit must be a whole number from 1 to \(Self.maximumLimit)")
            }
            self.limit = limit
        }
    }

    func page(_ store: TaskStore) throws -> TaskStore.TaskPage {
        try store.taskPage(status: status, type: type, cursor: cursor, limit: limit)
    }

    /// The `{id}` path parameter, percent-decoded (the router leaves it encoded); on the routes
    /// without one, `/task?id=` (see ``URLText/task(_:action:)``), the `id` query parameter.
    static func taskID(_ request: Request, _ context: WebRequestContext) throws(WebError) -> String {
        guard let id = context.parameters.get("id").map({ $0.removingPercentEncoding }) ?? request.query("id"),
            TaskDeclaration.isValidID(id)
        else {
            throw WebError(status: .notFound, message: "that is not a task id: ids are 1 to 200 printable characters")
        }
        return id
    }
}

/// What the dashboard and `GET /api/stats` show, read in one go.
struct DashboardSnapshot: Sendable {
    static let bucketSeconds = 10
    static let buckets = 60

    var counts: [TaskStatus: Int]
    var typeCounts: [String: Int]
    var throughput: [TaskStore.ThroughputBucket]
    var workers: [WorkerView]
    var recentFailures: [TaskRecord]
    var redisMemory: [RedisMemory]
    var now: Int64
    /// The group's lag per partition of the server's topic; `nil` when the broker did not answer
    /// and no recent reading is cached (see ``LagCache``).
    var lag: [PartitionLag]? = nil
    /// The total lag over the last minutes, as this server read it.
    var lagHistory = LagHistory()

    static func read(from backend: WebBackend) async throws -> DashboardSnapshot {
        let types = await backend.plugins().plugins.map(\.type)
        let now = currentEpochMilliseconds()
        var snapshot = try await backend.read { store in
            DashboardSnapshot(
                counts: try store.counts(), typeCounts: try store.typeCounts(types),
                throughput: try store.throughput(buckets: buckets, bucketSeconds: bucketSeconds, now: now),
                workers: WorkerView.listed(try store.workerHeartbeats().map { WorkerView($0, now: now) }),
                recentFailures: try store.taskPage(status: .failed, type: nil, cursor: nil, limit: 5).records,
                redisMemory: try store.memory(), now: now)
        }
        snapshot.lag = await backend.lag.read()
        snapshot.lagHistory = backend.lag.history()
        return snapshot
    }
}

extension Request {
    /// A query parameter, percent-decoded.
    func query(_ name: String) -> String? {
        uri.queryParameters[Substring(name)].map(String.init)
    }
}

/// The API's routes, registered on the router and noted per path, so that a method a path
/// does not take (`PUT /api/tasks`, `DELETE /api/tasks/<id>`) answers 405 with `Allow`, where
/// Hummingbird's router answers 404 as if the path did not exist.
private struct MethodTable {
    typealias Handler = @Sendable (Request, WebRequestContext) async throws -> Response

    let router: Router<WebRequestContext>
    /// Each path's methods, in the order the paths were registered.
    private var methods: [(path: String, methods: [HTTPRequest.Method])] = []

    init(router: Router<WebRequestContext>) {
        self.router = router
    }

    mutating func get(_ path: String, _ handler: @escaping Handler) { add(.get, path, handler) }
    mutating func post(_ path: String, _ handler: @escaping Handler) { add(.post, path, handler) }

    private mutating func add(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
        router.on(RouterPath(path), method: method, use: handler)
        if let index = methods.firstIndex(where: { $0.path == path }) {
            methods[index].methods.append(method)
        } else {
            methods.append((path, [method]))
        }
    }

    /// Registers a 405 for every common method each path does not take (`HEAD` is served
    /// as `GET` by ``RequestNormaliser``).
    func refuseOtherMethods() {
        for (path, taken) in methods {
            let allow = taken.flatMap { $0 == .get ? ["GET", "HEAD"] : [$0.rawValue] }.joined(separator: ", ")
            for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] where !taken.contains(method) {
                router.on(RouterPath(path), method: method) { request, _ in
                    var response = WebResponse.json(
                        WebError(
                            status: .methodNotAllowed,
                            message: "\(request.method.rawValue) is not a method of \(path): use \(allow)"))
                    response.headers[.allow] = allow
                    return response
                }
            }
        }
    }
}
