import Hummingbird
import YADTQCore

/// Builds responses: JSON for the API, HTML pages, and errors in whichever the client expects.
enum WebResponse {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: value.jsonBytes + [UInt8(ascii: "\n")])))
    }

    /// `{"error": "...", "details": [...]}` with the error's status, and `tasks` (each one's
    /// `id`, `type`, `url` and `status`, `UNKNOWN` or `NOT_SENT`) for a submit that failed.
    static func json(_ error: WebError) -> Response {
        var body: [String: JSONValue] = ["error": .string(error.message)]
        if !error.details.isEmpty { body["details"] = .array(error.details.map(JSONValue.string)) }
        if let unresolved = error.unresolved {
            body["tasks"] = .array(
                unresolved.tasks.map { task in
                    let id = task.id ?? ""
                    return [
                        "id": .string(id), "type": .string(task.type), "status": .string(unresolved.status.rawValue),
                        "url": .string(URLText.task(id)),
                    ]
                })
        }
        return json(.object(body), status: error.status)
    }

    static func html(_ page: HTML, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: page.text)))
    }

    /// The error as the client that asked expects it: JSON for the API and the health
    /// check, a page with the message for a browser.
    static func response(for error: WebError, request: Request, context: WebRequestContext) -> Response {
        let path = request.uri.path
        if WebSecurityMiddleware.isAPI(path) || path == "/healthz" { return json(error) }
        let page = PageLayout(title: "\(error.status.code) \(error.status.reasonPhrase)", context: context)
        return html(page.render(PageLayout.errorBox(error)), status: error.status)
    }
}
