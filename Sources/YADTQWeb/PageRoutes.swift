import Hummingbird
import YADTQCore

/// The HTML pages, their forms, the login and the embedded style sheet and script.
struct PageRoutes {
    let backend: WebBackend

    func register(on router: Router<WebRequestContext>) {
        router.get("/") { request, context in
            let snapshot = try await DashboardSnapshot.read(from: backend)
            return respond(Pages.dashboard(snapshot), request, context)
        }
        router.get("/tasks") { request, context in try await tasks(request, context) }
        router.get("/workers") { request, context in try await workers(request, context) }
        // A task's page and its buttons: at /tasks/<id>, or with the id in the query for the
        // ids a path cannot carry (see ``URLText/task(_:action:)``).
        for prefix in ["/tasks/{id}", "/task"] {
            router.get(RouterPath(prefix)) { request, context in
                try await task(try TaskFilter.taskID(request, context), request, context)
            }
            router.post(RouterPath(prefix + "/cancel")) { request, context in
                try await change(request, context) { try await backend.cancel($0) }
            }
            router.post(RouterPath(prefix + "/retry")) { request, context in
                try await change(request, context) { try await backend.retry($0) }
            }
        }
        router.post("/tasks/retry") { request, context in try await retryAll(request, context) }
        // As `GET /api/tasks/retry`: the literal segment shadows `{id}`, so the page of the
        // task whose id is `retry` is served here.
        router.get("/tasks/retry") { request, context in try await task("retry", request, context) }
        router.get("/submit") { request, context in
            let page = Pages.submit(
                catalog: await backend.plugins(), form: Pages.SubmitForm(), error: nil, csrf: context.csrfToken)
            return respond(page, request, context)
        }
        router.post("/submit") { request, context in try await submit(request, context) }
        router.get("/login") { request, context in
            let next = Self.safeTarget(request.query("next"))
            return respond(Pages.login(next: next, error: nil, csrf: context.csrfToken), request, context)
        }
        router.post("/login") { request, context in try await login(request, context) }
        router.post("/logout") { request, context in try await logout(request, context) }
        router.get("/static/app.css") { _, _ in Self.asset(WebAssets.css, type: "text/css; charset=utf-8") }
        router.get("/static/app.js") { _, _ in Self.asset(WebAssets.script, type: "text/javascript; charset=utf-8") }
    }

    private func respond(
        _ page: Page, _ request: Request, _ context: WebRequestContext, status: HTTPResponse.Status = .ok
    ) -> Response {
        PageLayout.response(
            page, request: request, context: context,
            showsSignOut: backend.configuration.token != nil && context.isSignedIn, status: status)
    }

    private func tasks(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let filter = try TaskFilter(request)
        let search = request.query("q")?.trimmingCharacters(in: .whitespaces) ?? ""
        var missingID: String?
        if !search.isEmpty {
            let exists = TaskDeclaration.isValidID(search) ? try await backend.read { try $0.record(id: search) != nil } : false
            if exists { return .redirect(to: URLText.task(search), type: .found) }
            missingID = search
        }
        let types = await backend.plugins().plugins.map(\.type)
        let now = currentEpochMilliseconds()
        let (page, counts) = try await backend.read { store in (try filter.page(store), try store.counts()) }
        return respond(
            Pages.tasks(
                filter: filter, query: search, missingID: missingID, page: page, counts: counts, types: types, now: now,
                retried: request.query("retried").flatMap { Int($0) }, moreToRetry: request.query("more") == "1",
                csrf: context.csrfToken),
            request, context)
    }

    /// The "Retry all" button of a list of FAILED or CANCELLED tasks: queues every kept task of
    /// the list's filter again (as `POST /api/tasks/retry`), then shows the list with how many.
    private func retryAll(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let fields = try await FormFields.read(request)
        try fields.requireCSRF(context)
        let type = fields["type"].isEmpty ? nil : fields["type"]
        let filter: RetryFilter
        do {
            guard let status = TaskStatus(rawValue: fields["status"].uppercased()) else {
                throw WebError(status: .badRequest, message: "Choose FAILED or CANCELLED tasks to retry.")
            }
            filter = try RetryFilter(status: status, type: type)
        } catch let error as RetryFilter.Invalid {
            throw WebError(status: .badRequest, message: error.description)
        }
        let bulk = try await backend.retry(matching: filter, limit: WebBackend.bulkRetryLimit)
        let requeued = bulk.changes.filter { $0 == .requeued }.count
        let back = URLText.link(
            "/tasks", ["status": filter.status.rawValue, "type": type, "retried": String(requeued), "more": bulk.more ? "1" : nil])
        return .redirect(to: back, type: .normal)
    }

    private func task(_ id: String, _ request: Request, _ context: WebRequestContext) async throws -> Response {
        guard let record = try await backend.read({ try $0.record(id: id) }) else {
            throw WebError(
                status: .notFound,
                message: "There is no task with id '\(id)': it was never submitted under this namespace, or Redis lost it.")
        }
        return respond(
            Pages.task(record, now: currentEpochMilliseconds(), csrf: context.csrfToken),
            request, context)
    }

    /// The Cancel and Retry buttons of a task's page: the change, then the task's page again.
    private func change(
        _ request: Request, _ context: WebRequestContext,
        _ body: (String) async throws -> TaskStore.OperatorChange
    ) async throws -> Response {
        try await FormFields.read(request).requireCSRF(context)
        let id = try TaskFilter.taskID(request, context)
        switch try await body(id) {
        case .missing: throw WebError(status: .notFound, message: "There is no task with id '\(id)'.")
        case .unchanged(let status):
            throw WebError(status: .conflict, message: "The task is \(status.rawValue): that change does not apply.")
        case .publishFailed(let reason): throw WebError(status: .serviceUnavailable, message: reason)
        case .cancelled, .cancelRequested, .requeued: return .redirect(to: URLText.task(id), type: .normal)
        }
    }

    private func workers(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let now = currentEpochMilliseconds()
        let workers = WorkerView.listed(
            try await backend.read { try $0.workerHeartbeats() }.map { WorkerView($0, now: now) })
        let page = Pages.workers(workers, namespace: backend.configuration.settings.namespace)
        return respond(page, request, context)
    }

    /// Both submit forms; an invalid submission shows the form again with the message and
    /// what was typed, and queues nothing.
    private func submit(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let fields = try await FormFields.read(request)
        try fields.requireCSRF(context)
        var form = Pages.SubmitForm(
            type: fields["type"], arguments: fields["args"], maxAttempts: fields["max_attempts"], delay: fields["delay"],
            lines: fields["lines"])
        let catalog = await backend.plugins()
        do {
            let parsed =
                fields["mode"] == "lines"
                ? try SubmissionInput.declarations(lines: form.lines)
                : [
                    try SubmissionInput.declaration(
                        type: form.type, arguments: form.arguments, maxAttempts: form.maxAttempts, delay: form.delay)
                ]
            let published = try await backend.publish(try SubmissionInput.resolve(parsed, with: catalog))
            return respond(Pages.submitted(published), request, context, status: .created)
        } catch let error as WebError {
            // The tasks of a submit Redis or the broker failed come back in the box with their ids, to be sent as they are.
            if let unresolved = error.unresolved { form.lines = unresolved.tasks.map(\.json.jsonString).joined(separator: "\n") }
            let page = Pages.submit(catalog: catalog, form: form, error: error, csrf: context.csrfToken)
            return respond(page, request, context, status: error.status)
        }
    }

    private func login(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        let fields = try await FormFields.read(request)
        try fields.requireCSRF(context)
        let next = Self.safeTarget(fields["next"])
        guard let token = backend.configuration.token else { return .redirect(to: next, type: .normal) }
        let now = currentEpochMilliseconds()
        if case .refuse(let retryAfter) = backend.loginThrottle.withLock({ $0.attempt(at: now) }) {
            let page = Pages.login(
                next: next,
                error: "Too many wrong tokens were tried: signing in is closed for \(retryAfter) s. Try again then.",
                csrf: context.csrfToken)
            var response = respond(page, request, context, status: .tooManyRequests)
            response.headers[.retryAfter] = String(retryAfter)
            return response
        }
        guard WebSecurityMiddleware.constantTimeEqual(fields["token"], token) else {
            let closes = backend.loginThrottle.withLock { $0.failed(at: now) }
            let client = context.clientAddress ?? "an unknown address"
            context.logger.notice("failed sign-in from \(client): wrong token")
            if closes {
                let window = LoginThrottle.window / 1000
                context.logger.warning(
                    "\(LoginThrottle.maximumFailures) wrong tokens within \(window) s: signing in is closed for a while (the bearer token and signed-in browsers still work)")
            }
            let page = Pages.login(next: next, error: "That is not the token: try again.", csrf: context.csrfToken)
            return respond(page, request, context, status: .unauthorized)
        }
        let session = try await backend.read {
            try $0.createWebSession(
                lifetime: WebSecurityMiddleware.sessionLifetime,
                fingerprint: WebSecurityMiddleware.sessionFingerprint(of: token))
        }
        var response = Response.redirect(to: next, type: .normal)
        response.setCookie(
            backend.configuration.cookie(
                WebSecurityMiddleware.sessionCookie, value: session,
                maxAge: Int(WebSecurityMiddleware.sessionLifetime.components.seconds)))
        return response
    }

    private func logout(_ request: Request, _ context: WebRequestContext) async throws -> Response {
        try await FormFields.read(request).requireCSRF(context)
        if let session = request.cookies[WebSecurityMiddleware.sessionCookie]?.value {
            try await backend.read { try $0.deleteWebSession(session) }
        }
        var response = Response.redirect(to: "/login", type: .normal)
        response.setCookie(backend.configuration.cookie(WebSecurityMiddleware.sessionCookie, value: "", maxAge: 0))
        return response
    }

    /// A redirect target after login: a path on this server only, never another site. Besides
    /// `//` and `\`, it refuses whitespace and control characters anywhere: a browser drops a
    /// tab or line break from a URL, so `/\t/evil.example` would lead to `//evil.example`.
    static func safeTarget(_ target: String?) -> String {
        guard let target, target.hasPrefix("/"), !target.hasPrefix("//"), !target.contains("\\"),
            !target.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control })
        else { return "/" }
        return target
    }

    private static func asset(_ text: String, type: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
