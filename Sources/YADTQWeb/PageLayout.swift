import HTTPTypes
import Hummingbird
import YADTQCore

/// One server-rendered page: the part that stays put (forms) and the live part that the
/// page's script fetches again every second.
struct Page {
    var title: String
    /// The navigation entry to highlight.
    var section: PageLayout.Section?
    var content: HTML
    /// Refreshed every second without reloading; `nil` for a page that does not change.
    var live: HTML?
    var contentAfterLive: HTML = .empty
}

/// The frame around every page: header with navigation, the embedded style sheet and script.
struct PageLayout {
    enum Section: String, CaseIterable {
        case dashboard = "Dashboard", submit = "Submit", tasks = "Tasks", workers = "Workers"

        var path: String {
            switch self {
            case .dashboard: "/"
            case .submit: "/submit"
            case .tasks: "/tasks"
            case .workers: "/workers"
            }
        }
    }

    /// The header by which the page's script asks for the live part only.
    static let liveHeader = HTTPField.Name("X-YADTQ-Live")!

    var title: String
    var section: Section?
    var context: WebRequestContext
    /// Whether to offer "Sign out": only when a token is configured and the visitor signed in.
    var showsSignOut = false

    init(title: String, section: Section? = nil, context: WebRequestContext, showsSignOut: Bool = false) {
        self.title = title
        self.section = section
        self.context = context
        self.showsSignOut = showsSignOut
    }

    func render(_ body: HTML) -> HTML {
        let navigation = HTML(
            joining: Section.allCases.map { item in
                let active: HTML = item == section ? #" class="active""# : ""
                return "<a href=\"\(item.path)\"\(active)>\(item.rawValue)</a>"
            })
        let signOut: HTML =
            showsSignOut
            ? """
            <form method="post" action="/logout"><input type="hidden" name="csrf" value="\(context.csrfToken)">\
            <button class="logout" type="submit">Sign out</button></form>
            """ : .empty
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · YADTQ</title>
            <link rel="stylesheet" href="/static/app.css">
            <script src="/static/app.js" defer></script>
            </head>
            <body>
            <header class="top"><a class="brand" href="/">YADT<span>Q</span></a><nav>\(navigation)</nav>\(signOut)</header>
            <main>
            \(body)
            </main>
            <footer>YADTQ · yet another distributed task queue</footer>
            </body>
            </html>
            """
    }

    /// The page, or only its live part when the page's script asks for it.
    static func response(
        _ page: Page, request: Request, context: WebRequestContext, showsSignOut: Bool,
        status: HTTPResponse.Status = .ok
    ) -> Response {
        if let live = page.live, request.headers[liveHeader] != nil {
            return WebResponse.html(live, status: status)
        }
        let layout = PageLayout(title: page.title, section: page.section, context: context, showsSignOut: showsSignOut)
        let live: HTML = page.live.map { "<div id=\"live\">\($0)</div>" } ?? .empty
        return WebResponse.html(layout.render("\(page.content)\(live)\(page.contentAfterLive)"), status: status)
    }

    static func errorBox(_ error: WebError) -> HTML {
        let details: HTML =
            error.details.isEmpty
            ? .empty : "<ul>\(HTML(joining: error.details.map { "<li>\($0)</li>" }))</ul>"
        return "<div class=\"notice error\" role=\"alert\"><strong>\(error.message)</strong>\(details)</div>"
    }

    static func badge(_ status: String) -> HTML {
        "<span class=\"badge s-\(status)\">\(status)</span>"
    }
}
