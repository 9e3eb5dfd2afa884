import Foundation
import YADTQCore

/// The pages' HTML, from data already read. Every value is interpolated into ``HTML``,
/// which escapes it, so a task's `<script>` args show as text.
enum Pages {
    typealias Presentation = TaskPresentation

    // MARK: - Dashboard

    static func dashboard(_ snapshot: DashboardSnapshot) -> Page {
        let total = snapshot.counts.values.reduce(0, +)
        let cards = HTML(
            joining: [statCard("All tasks", total, link: "/tasks", style: "")]
                + TaskStatus.allCases.map { status in
                    statCard(
                        status.rawValue, snapshot.counts[status] ?? 0, link: URLText.link("/tasks", ["status": status.rawValue]),
                        style: "s-" + status.rawValue)
                })
        let finished = snapshot.throughput.reduce((0, 0)) { ($0.0 + $1.succeeded, $0.1 + $1.failed) }
        let busiest = snapshot.throughput.map { $0.succeeded + $0.failed }.max() ?? 0
        let window = DashboardSnapshot.buckets * DashboardSnapshot.bucketSeconds / 60
        let workerRows = HTML(
            joining: snapshot.workers.map { worker in
                """
                <tr><td class="mono">\(worker.name)</td><td>\(verdictBadge(worker))</td><td>\(worker.state)</td>\
                <td>\(worker.processed)</td></tr>
                """
            })
        let typeRows = HTML(
            joining: snapshot.typeCounts.sorted { $0.key < $1.key }.map { type, count in
                "<tr><td><a href=\"\(URLText.link("/tasks", ["type": type]))\">\(type)</a></td><td>\(count)</td></tr>"
            })
        let failureRows = HTML(
            joining: snapshot.recentFailures.map { record in
                """
                <tr><td class="mono clip"><a href="\(URLText.task(record.id))">\(record.id)</a></td><td>\(record.type)</td>\
                <td class="clip">\(record.error ?? "")</td></tr>
                """
            })
        let lagRows = HTML(
            joining: (snapshot.lag ?? []).map { partition in
                """
                <tr><td>\(partition.topic)</td><td>\(partition.partition)</td>\
                <td>\(partition.committed.map(String.init) ?? "—")</td><td>\(partition.end)</td><td>\(partition.lag)</td></tr>
                """
            })
        let lagEmpty = snapshot.lag == nil ? "The broker did not answer." : "The topic does not exist yet."
        // A full Redis refuses every write: the page says so before and while it happens.
        let memoryNotices = HTML(
            joining: snapshot.redisMemory.compactMap(\.warning).map { "<div class=\"notice error\" role=\"alert\">\($0)</div>" })
        let live: HTML = """
            \(memoryNotices)<div class="stats">\(cards)</div>
            <section class="card">
            <h2>Finished tasks, last \(window) minutes</h2>
            \(throughputChart(snapshot.throughput, now: snapshot.now))
            <div class="legend"><span><i class="ok-key"></i>\(finished.0) succeeded</span>\
            <span><i class="bad-key"></i>\(finished.1) failed</span>\
            <span>busiest \(DashboardSnapshot.bucketSeconds) s: \(busiest) tasks \
            (\(String(format: "%.1f", Double(busiest) / Double(DashboardSnapshot.bucketSeconds))) per second)</span></div>
            </section>
            <div class="grid">
            <section class="card"><h2>Workers</h2>\(table(["Worker", "Verdict", "State", "Processed"], workerRows, empty: "No worker has sent a heartbeat yet."))\
            <p class="small"><a href="/workers">All about the workers →</a></p></section>
            <section class="card"><h2>Tasks by type</h2>\(table(["Type", "Tasks"], typeRows, empty: "No task types in the plugin folder."))</section>
            <section class="card"><h2>Latest failures</h2>\(table(["Task", "Type", "Error"], failureRows, empty: "No failed tasks."))</section>
            </div>
            <section class="card"><h2>Consumer lag</h2>\(lagChart(snapshot.lagHistory))\
            \(table(["Topic", "Partition", "Committed", "End", "Lag"], lagRows, empty: lagEmpty))\
            <p class="small">Messages not yet committed by the group, per partition, and their total over the \
            last minutes as this server read it; also on <a href="/metrics">/metrics</a>.</p></section>
            """
        return Page(title: "Dashboard", section: .dashboard, content: "<h1>Dashboard</h1>", live: live)
    }

    private static func statCard(_ label: String, _ value: Int, link: String, style: String) -> HTML {
        "<a class=\"stat \(style)\" href=\"\(link)\"><div class=\"label\">\(label)</div><div class=\"value\">\(value)</div></a>"
    }

    /// A chart's frame: its size, plot area and value scale, and the horizontal grid lines.
    struct ChartFrame {
        let width = 960.0, height = 220.0, left = 44.0, right = 8.0, top = 10.0, bottom = 24.0
        var plotWidth: Double { width - left - right }
        var plotHeight: Double { height - top - bottom }
        /// The value at the top of the plot: a tidy number at or above the peak.
        let scale: Double

        init(peak: Int) { scale = Double(Pages.niceCeiling(max(peak, 4))) }

        func y(_ value: Double) -> Double { top + plotHeight - value / scale * plotHeight }

        /// 5 grid steps for a scale of 1 or 5 times a power of ten, 4 for 2 times: whole numbers.
        var grid: [HTML] {
            let steps = String(Int(scale)).first == "2" ? 4 : 5
            return (0...steps).map { step in
                let value = scale * Double(step) / Double(steps)
                let line = y(value)
                return """
                    <line class="axis" x1="\(left)" x2="\(width - right)" y1="\(line)" y2="\(line)"/>\
                    <text x="\(left - 6)" y="\(line + 4)" text-anchor="end">\(Int(value))</text>
                    """
            }
        }
    }

    /// The group's total lag over the samples this server read, as an inline SVG line.
    static func lagChart(_ history: LagHistory) -> HTML {
        let samples = history.samples
        guard samples.count >= 2, let first = samples.first, let last = samples.last, last.at > first.at else {
            return "<p class=\"small\">The lag chart fills in as this page is watched (a sample every \(Duration.milliseconds(LagHistory.spacing).compactText)).</p>"
        }
        let frame = ChartFrame(peak: Int(samples.map(\.total).max() ?? 0))
        let span = Double(last.at - first.at)
        let points = samples.map { sample in
            let x = frame.left + Double(sample.at - first.at) / span * frame.plotWidth
            return "\(x),\(frame.y(Double(sample.total)))"
        }
        let minutes = String(format: "%.1f", span / 60_000)
        return """
            <svg class="chart" viewBox="0 0 \(Int(frame.width)) \(Int(frame.height))" role="img" \
            aria-label="Total consumer lag over the last \(minutes) minutes">\(HTML(joining: frame.grid))\
            <polyline class="lag" fill="none" points="\(points.joined(separator: " "))"/>\
            <text x="\(frame.left)" y="\(frame.height - 6)">−\(minutes) min</text>\
            <text x="\(frame.width - frame.right)" y="\(frame.height - 6)" text-anchor="end">now: \(last.total)</text></svg>
            """
    }

    /// Stacked bars of succeeded and failed tasks per bucket, drawn as inline SVG by the server:
    /// no chart library, nothing to download.
    static func throughputChart(_ buckets: [TaskStore.ThroughputBucket], now: Int64) -> HTML {
        let frame = ChartFrame(peak: buckets.map { $0.succeeded + $0.failed }.max() ?? 0)
        let (width, height, left, top) = (frame.width, frame.height, frame.left, frame.top)
        let (plotWidth, plotHeight, scale) = (frame.plotWidth, frame.plotHeight, frame.scale)
        let slot = plotWidth / Double(max(buckets.count, 1))
        var parts: [HTML] = frame.grid
        for (index, bucket) in buckets.enumerated() {
            let x = left + Double(index) * slot + slot * 0.12
            let barWidth = slot * 0.76
            let okHeight = Double(bucket.succeeded) / scale * plotHeight
            let badHeight = Double(bucket.failed) / scale * plotHeight
            let label = "\(Presentation.time(bucket.start)): \(bucket.succeeded) succeeded, \(bucket.failed) failed"
            parts.append(
                """
                <g><title>\(label)</title>\
                <rect class="ok" x="\(x)" y="\(top + plotHeight - okHeight)" width="\(barWidth)" height="\(okHeight)"/>\
                <rect class="bad" x="\(x)" y="\(top + plotHeight - okHeight - badHeight)" width="\(barWidth)" height="\(badHeight)"/></g>
                """)
            let fromEnd = buckets.count - 1 - index
            let perMinute = 60 / DashboardSnapshot.bucketSeconds
            if fromEnd % perMinute == 0 {
                let text = fromEnd == 0 ? "now" : "−\(fromEnd / perMinute) min"
                parts.append("<text x=\"\(x + barWidth / 2)\" y=\"\(height - 6)\" text-anchor=\"middle\">\(text)</text>")
            }
        }
        return """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" \
            aria-label="Finished tasks per \(DashboardSnapshot.bucketSeconds) seconds">\(HTML(joining: parts))</svg>
            """
    }

    /// The smallest of 1, 2 or 5 times a power of ten that is at least `value`, for a tidy axis.
    static func niceCeiling(_ value: Int) -> Int {
        var magnitude = 1
        while true {
            for step in [1, 2, 5] where step * magnitude >= value { return step * magnitude }
            magnitude *= 10
        }
    }

    // MARK: - Tasks

    static func tasks(
        filter: TaskFilter, query: String, missingID: String?, page: TaskStore.TaskPage, counts: [TaskStatus: Int],
        types: [String], now: Int64, retried: Int? = nil, moreToRetry: Bool = false, csrf: String = ""
    ) -> Page {
        let statusOptions = HTML(
            joining: [option("", "any status", selected: filter.status == nil)]
                + TaskStatus.allCases.map { option($0.rawValue, $0.rawValue, selected: filter.status == $0) })
        let typeOptions = HTML(
            joining: [option("", "any type", selected: filter.type == nil)]
                + types.map { option($0, $0, selected: filter.type == $0) })
        let notFound: HTML =
            missingID.map { "<div class=\"notice error\">There is no task with id <code>\($0)</code>.</div>" } ?? .empty
        let retriedNotice: HTML =
            retried.map {
                let rest: HTML = moreToRetry ? " More match than one retry takes: <b>Retry all</b> again for the rest." : ""
                return "<div class=\"notice ok\">\($0) tasks queued again and published.\(rest)</div>"
            } ?? .empty
        let content: HTML = """
            <h1>Tasks</h1>
            \(notFound)\(retriedNotice)\(retryAll(filter, counts: counts, csrf: csrf))
            <form class="filters" method="get" action="/tasks">
            <div class="field"><label for="status">Status</label><select id="status" name="status">\(statusOptions)</select></div>
            <div class="field"><label for="type">Type</label><select id="type" name="type">\(typeOptions)</select></div>
            <div class="field grow"><label for="q">Task id</label>\
            <input id="q" name="q" value="\(query)" placeholder="find a task by its id" autocomplete="off"></div>
            <button type="submit">Show</button> <a class="button secondary" href="/tasks">Clear</a>
            </form>
            """
        let total = counts.values.reduce(0, +)
        let chips = HTML(
            joining: [chip("All", total, status: nil, filter: filter)]
                + TaskStatus.allCases.map { chip($0.rawValue, counts[$0] ?? 0, status: $0, filter: filter) })
        let rows = HTML(joining: page.records.map { taskRow($0, now: now) })
        var pager: [HTML] = []
        if filter.cursor != nil {
            pager.append("<a class=\"button secondary\" href=\"\(URLText.link("/tasks", ["status": filter.status?.rawValue, "type": filter.type]))\">← Newest</a>")
        }
        if let next = page.nextCursor {
            pager.append(
                "<a class=\"button secondary\" href=\"\(URLText.link("/tasks", ["status": filter.status?.rawValue, "type": filter.type, "cursor": next]))\">Older →</a>")
        }
        let live: HTML = """
            <div class="chips">\(chips)</div>
            <section class="card">
            \(table(["Task", "Type", "Status", "Attempts", "Args", "Result / error", "Worker", "Queued", "Took"], rows, empty: "No tasks match."))
            <div class="pager">\(HTML(joining: pager))<span class="muted small">\(page.records.count) shown · newest first · updates every second</span></div>
            </section>
            """
        return Page(title: "Tasks", section: .tasks, content: content, live: live)
    }

    /// "Retry all" on a list filtered to FAILED or CANCELLED tasks (and to a type, if chosen):
    /// queues every kept task of that filter again (``RetryFilter``), not only the page shown.
    private static func retryAll(_ filter: TaskFilter, counts: [TaskStatus: Int], csrf: String) -> HTML {
        guard let status = filter.status, RetryFilter.retryable.contains(status), (counts[status] ?? 0) > 0 else {
            return .empty
        }
        let type: HTML = filter.type.map { "<input type=\"hidden\" name=\"type\" value=\"\($0)\">" } ?? .empty
        let what = filter.type.map { "\(status.rawValue) \($0)" } ?? status.rawValue
        return """
            <form method="post" action="/tasks/retry" class="actions">\
            <input type="hidden" name="csrf" value="\(csrf)"><input type="hidden" name="status" value="\(status.rawValue)">\(type)\
            <button type="submit" title="Queue every kept \(what) task again">Retry all</button></form>
            """
    }

    private static func chip(_ label: String, _ count: Int, status: TaskStatus?, filter: TaskFilter) -> HTML {
        let active: HTML = status == filter.status ? " active" : ""
        let link = URLText.link("/tasks", ["status": status?.rawValue, "type": filter.type])
        return "<a class=\"chip\(active)\" href=\"\(link)\">\(label)<b>\(count)</b></a>"
    }

    private static func taskRow(_ record: TaskRecord, now: Int64) -> HTML {
        let outcome: String =
            switch record.status {
            case .success: record.result.map { Presentation.excerpt($0) } ?? ""
            default: record.error ?? ""
            }
        let took = Presentation.Durations(record).total
        return """
            <tr data-task-id="\(record.id)"><td class="mono clip"><a href="\(URLText.task(record.id))">\(record.id)</a></td>\
            <td>\(record.type)</td><td>\(PageLayout.badge(record.status.rawValue))</td>\
            <td>\(record.attempts)/\(record.maxAttempts)</td><td class="mono clip">\(Presentation.excerpt(record.args))</td>\
            <td class="mono clip">\(outcome)</td><td class="mono">\(record.worker ?? "—")</td>\
            <td class="small">\(Presentation.age(record.queuedAt, now: now))</td><td class="small">\(Presentation.duration(took))</td></tr>
            """
    }

    // MARK: - One task

    static func task(_ record: TaskRecord, now: Int64, csrf: String = "") -> Page {
        let durations = Presentation.Durations(record)
        let progress: HTML = record.progress.map { value -> HTML in
            let percent = Int((min(max(value, 0), 1) * 100).rounded())
            return "<progress max=\"100\" value=\"\(percent)\"></progress> \(percent)%"
        } ?? "—"
        let result: HTML = record.result.map { value -> HTML in "<section class=\"card\"><h2>Result</h2><pre>\(Presentation.pretty(value))</pre></section>" } ?? .empty
        let errorRows = HTML(
            joining: record.errors.map { entry in
                """
                <tr><td>\(entry.attempt)</td><td class="mono">\(entry.worker.isEmpty ? "—" : entry.worker)</td>\
                <td class="small">\(Presentation.time(entry.at))</td><td><pre>\(entry.error)</pre></td></tr>
                """
            })
        let logs: HTML =
            record.logs.isEmpty
            ? "<p class=\"muted\">The task logged nothing.</p>" : "<pre>\(record.logs.joined(separator: "\n"))</pre>"
        let typeLink = URLText.link("/tasks", ["type": record.type])
        let live: HTML = """
            <section class="card">
            <dl class="facts">
            <dt>Status</dt><dd>\(PageLayout.badge(record.status.rawValue))</dd>
            <dt>Type</dt><dd><a href="\(typeLink)">\(record.type)</a></dd>
            <dt>Attempts</dt><dd>\(record.attempts) of \(record.maxAttempts)</dd>
            <dt>Worker</dt><dd class="mono">\(record.worker ?? "—")</dd>
            <dt>Partition</dt><dd>\(record.partition.map(String.init) ?? "—")</dd>
            <dt>Progress</dt><dd>\(progress)</dd>
            <dt>Queued</dt><dd>\(Presentation.time(record.queuedAt)) <span class="muted small">(\(Presentation.age(record.queuedAt, now: now)))</span></dd>
            \(record.dueAt.map { "<dt>Due</dt><dd>\(Presentation.time($0))</dd>" as HTML } ?? .empty)
            <dt>Started</dt><dd>\(Presentation.time(record.startedAt))</dd>
            <dt>Finished</dt><dd>\(Presentation.time(record.finishedAt))</dd>
            <dt>Durations</dt><dd class="timeline"><span class="step">queued</span><span class="gap">waited \
            \(Presentation.duration(durations.waited)) →</span><span class="step">started</span><span class="gap">ran \
            \(Presentation.duration(durations.ran)) →</span><span class="step">finished</span>\
            <span class="muted">total \(Presentation.duration(durations.total))</span></dd>
            </dl>
            </section>
            <section class="card"><h2>Arguments</h2><pre id="task-args-json">\(Presentation.pretty(record.args))</pre></section>
            \(result)
            <section class="card"><h2>Errors</h2>\(table(["Attempt", "Worker", "At", "Error"], errorRows, empty: "No attempt failed."))</section>
            <section class="card"><h2>Log</h2>\(logs)</section>
            """
        let content: HTML = "<h1>Task <code>\(record.id)</code></h1>\(actions(record, csrf: csrf))"
        return Page(title: "Task \(record.id)", section: .tasks, content: content, live: live)
    }

    /// Cancel for a SCHEDULED, QUEUED or PROCESSING task, Retry for a FAILED or CANCELLED one.
    private static func actions(_ record: TaskRecord, csrf: String) -> HTML {
        let action: (path: String, label: String)
        switch record.status {
        case .scheduled, .queued, .processing: action = ("cancel", "Cancel")
        case .failed, .cancelled: action = ("retry", "Retry")
        case .success: return .empty
        }
        let target = URLText.task(record.id, action: action.path)
        return """
            <form method="post" action="\(target)" class="actions">\
            <input type="hidden" name="csrf" value="\(csrf)"><button type="submit">\(action.label)</button></form>
            """
    }

    // MARK: - Workers

    static func workers(_ workers: [WorkerView], namespace: String) -> Page {
        let rows = HTML(
            joining: workers.map { worker in
                let task: HTML = worker.currentTask.map { id in
                    """
                    <a class="mono" href="\(URLText.task(id))">\(id)</a> \
                    <span class="muted small">for \(Presentation.duration(worker.taskStartedAt.map { worker.clock - $0 }))</span>
                    """
                } ?? "—"
                let by: HTML = worker.judgedByMonitor ? "" : " <span class=\"muted small\">by heartbeat</span>"
                return """
                    <tr><td class="mono">\(worker.name)</td><td>\(verdictBadge(worker))\(by)</td><td>\(worker.state)</td>\
                    <td>\(Presentation.age(worker.lastHeartbeat, now: worker.clock))</td><td>\(task)</td><td>\(worker.processed)</td>\
                    <td>\(worker.failed)</td><td>\(worker.partitions.map(String.init).joined(separator: ", "))</td>\
                    <td class="mono small">\(worker.host ?? "—") · \(worker.pid.map(String.init) ?? "—")</td>\
                    <td class="small">\(Presentation.age(worker.startedAt, now: worker.clock))</td><td class="small">\(metricsLink(worker))</td></tr>
                    """
            })
        let verdicts = Dictionary(grouping: workers, by: \.verdict.rawValue).sorted { $0.key < $1.key }
        let summary = HTML(joining: verdicts.map { "<span class=\"chip\">\($0.key)<b>\($0.value.count)</b></span>" })
        let live: HTML = """
            <div class="chips">\(summary)</div>
            <section class="card">
            \(table(["Worker", "Verdict", "State", "Last heartbeat", "Current task", "Processed", "Failed", "Partitions", "Host · pid", "Started", "Metrics"], rows, empty: "No worker has sent a heartbeat under namespace \(namespace) yet: start one with yadtq-worker <name> <topic>."))
            </section>
            <p class="muted small">Verdicts come from yadtq-monitor when it runs; otherwise the page applies its rules: \
            DEAD after \(WorkerView.rules.deadAfter.compactText) (or two of the worker's heartbeat intervals, if longer) without a \
            heartbeat, STUCK when a task runs past the \
            worker's time limit plus one heartbeat interval.</p>
            """
        return Page(title: "Workers", section: .workers, content: "<h1>Workers</h1>", live: live)
    }

    /// A link to the worker's own `/metrics`, when it serves one.
    private static func metricsLink(_ worker: WorkerView) -> HTML {
        guard let port = worker.heartbeat?.metricsPort else { return "—" }
        let host = worker.host == ProcessInfo.processInfo.hostName ? "127.0.0.1" : worker.host ?? "127.0.0.1"
        return "<a href=\"http://\(host):\(port)/metrics\">:\(port)</a>"
    }

    private static func verdictBadge(_ worker: WorkerView) -> HTML {
        "<span class=\"badge v-\(worker.verdict.rawValue)\" title=\"\(worker.reason)\">\(worker.verdict.rawValue)</span>"
    }

    // MARK: - Submit

    /// What the visitor typed, put back into the forms after an error.
    struct SubmitForm {
        var type = ""
        var arguments = ""
        var maxAttempts = ""
        var delay = ""
        var lines = ""
    }

    static func submit(catalog: PluginCatalog, form: SubmitForm, error: WebError?, csrf: String) -> Page {
        let options = HTML(
            joining: catalog.plugins.map { plugin in
                let description = plugin.loadError.map { "does not load: \($0)" } ?? plugin.description ?? ""
                let disabled: HTML = plugin.isLoaded ? "" : " disabled"
                let selected: HTML = plugin.type == form.type ? " selected" : ""
                return """
                    <option value="\(plugin.type)" data-description="\(description)" \
                    data-args="\(plugin.args ?? "")"\(selected)\(disabled)>\(plugin.type)</option>
                    """
            })
        let typeRows = HTML(
            joining: catalog.plugins.map { plugin in
                let state: HTML = plugin.loadError.map { "<span class=\"badge s-FAILED\">broken</span> <span class=\"small\">\($0)</span>" } ?? "<span class=\"badge s-SUCCESS\">ready</span>"
                return """
                    <tr><td class="mono">\(plugin.type)</td><td>\(plugin.description ?? "—")</td><td>\(plugin.args ?? "—")</td>\
                    <td>\(plugin.maxAttempts.map(String.init) ?? "3")</td>\
                    <td>\(plugin.timeoutSeconds.map { String(format: "%g s", $0) } ?? "default")</td><td>\(state)</td></tr>
                    """
            })
        let scanError: HTML = catalog.scanError.map { "<div class=\"notice error\">\($0)</div>" } ?? .empty
        let hidden: HTML = "<input type=\"hidden\" name=\"csrf\" value=\"\(csrf)\">"
        let content: HTML = """
            <h1>Submit tasks</h1>
            \(error.map(PageLayout.errorBox) ?? .empty)\(scanError)
            <div class="grid">
            <section class="card">
            <h2>One task</h2>
            <form method="post" action="/submit" id="one-task">\(hidden)<input type="hidden" name="mode" value="one">
            <div class="field"><label for="task-type">Task type</label><select id="task-type" name="type" required>\(options)</select>
            <p class="help" id="type-help"></p></div>
            <div class="field"><label for="task-args">Arguments</label>\
            <input id="task-args" name="args" value="\(form.arguments)" autocomplete="off" spellcheck="false">
            <p class="help">As in a task file: <code>1 2</code>, <code>"hello world" 3</code>, <code>[1, 2]</code>; a bare word is a string.</p></div>
            <div class="field"><label for="max-attempts">Max attempts</label>\
            <input id="max-attempts" name="max_attempts" type="number" min="1" max="100" value="\(form.maxAttempts)" \
            placeholder="the plugin's, or 3"></div>
            <div class="field"><label for="task-delay">Delay</label>            <input id="task-delay" name="delay" value="\(form.delay)" autocomplete="off" spellcheck="false" placeholder="none: at once">
            <p class="help">Start it later: <code>500ms</code>, <code>30s</code>, <code>5m</code>, <code>2h</code>, <code>1d</code> or seconds.             It waits SCHEDULED until then.</p></div>
            <button type="submit">Submit task</button>
            </form>
            </section>
            <section class="card">
            <h2>Many tasks</h2>
            <form method="post" action="/submit" id="many-tasks">\(hidden)<input type="hidden" name="mode" value="lines">
            <div class="field"><label for="task-lines">One task a line, in the tasks.d format</label>\
            <textarea id="task-lines" name="lines" spellcheck="false" placeholder="add 1 2
            concat &quot;hello world&quot; &quot;!&quot;
            {&quot;type&quot;: &quot;mul&quot;, &quot;args&quot;: [3, 4], &quot;max_attempts&quot;: 5}">\(form.lines)</textarea></div>
            <button type="submit">Submit all</button>
            </form>
            </section>
            </div>
            <section class="card"><h2>Task types</h2>\
            \(table(["Type", "What it does", "Arguments", "Max attempts", "Timeout", "Plugin"], typeRows, empty: "The plugin folder has no plugins."))</section>
            """
        return Page(title: "Submit", section: .submit, content: content)
    }

    static func submitted(_ published: [PublishedTask]) -> Page {
        let queued = published.filter { $0.outcome.isAccepted }.count
        let rows = HTML(
            joining: published.map { task in
                let outcome: (String, HTML) =
                    switch task.outcome {
                    case .published(let partition): ("QUEUED", "partition \(partition)")
                    case .scheduled(let dueAt): ("SCHEDULED", "due \(timestampText(epochMilliseconds: dueAt))")
                    case .duplicate: ("DUPLICATE", "a task with this id already exists; it was left alone")
                    case .failed(let reason): ("FAILED", "\(reason)")
                    }
                return """
                    <tr data-task-id="\(task.message.id)"><td class="mono"><a href="\(URLText.task(task.message.id))">\(task.message.id)</a></td>\
                    <td>\(task.message.type)</td><td>\(PageLayout.badge(outcome.0))</td><td class="small">\(outcome.1)</td></tr>
                    """
            })
        let noticeStyle: HTML = queued == published.count ? "ok" : "error"
        let content: HTML = """
            <h1>Submitted</h1>
            <div class="notice \(noticeStyle)">\(queued) of \(published.count) tasks queued.</div>
            <section class="card">\(table(["Task", "Type", "Status", ""], rows, empty: ""))</section>
            <p><a class="button" href="/tasks">Watch them on the Tasks page</a> <a class="button secondary" href="/submit">Submit more</a></p>
            """
        return Page(title: "Submitted", section: .submit, content: content)
    }

    // MARK: - Login

    static func login(next: String, error: String?, csrf: String) -> Page {
        let message: HTML = error.map { "<div class=\"notice error\">\($0)</div>" } ?? .empty
        let content: HTML = """
            <section class="card login">
            <h1>Sign in</h1>
            \(message)
            <form method="post" action="/login">
            <input type="hidden" name="csrf" value="\(csrf)"><input type="hidden" name="next" value="\(next)">
            <div class="field"><label for="token">Access token</label>\
            <input id="token" name="token" type="password" autocomplete="current-password" required autofocus></div>
            <button type="submit">Sign in</button>
            <p class="help">The server's YADTQ_WEB_TOKEN.</p>
            </form>
            </section>
            """
        return Page(title: "Sign in", section: nil, content: content)
    }

    // MARK: - Pieces

    private static func option(_ value: String, _ label: String, selected: Bool) -> HTML {
        let mark: HTML = selected ? " selected" : ""
        return "<option value=\"\(value)\"\(mark)>\(label)</option>"
    }

    private static func table(_ headers: [String], _ rows: HTML, empty: String) -> HTML {
        if rows == .empty { return "<p class=\"empty\">\(empty)</p>" }
        let head = HTML(joining: headers.map { "<th>\($0)</th>" })
        return "<table><thead><tr>\(head)</tr></thead><tbody>\(rows)</tbody></table>"
    }
}
