import Foundation
import HTTPTypes
import Hummingbird
import YADTQCore

/// The request context of every route: Hummingbird's core storage plus the CSRF token
/// that forms on the page must send back.
struct WebRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The browser's `yadtq_csrf` cookie, or a new value that the response sets as that cookie.
    var csrfToken = ""
    /// Whether the request came with a valid login (always true when no token is configured;
    /// not looked up for the public paths).
    var isSignedIn = false
    /// The connecting client's IP address (a proxy's, behind one), for the logs.
    let clientAddress: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        clientAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// What every request goes through before the router: its path normalised (see
/// ``WebPath/normalised(_:)``, the query kept), so the router and ``WebSecurityMiddleware``
/// match one and the same spelling; `HEAD` served as `GET` without the body; and its
/// ``WebBackend/deadline`` set, ``WebBackend/redisWait`` from now.
struct RequestNormaliser<Inner: HTTPResponder>: HTTPResponder where Inner.Context == WebRequestContext {
    let inner: Inner

    func respond(to request: Request, context: WebRequestContext) async throws -> Response {
        try await WebBackend.$deadline.withValue(CallDeadline(budget: WebBackend.redisWait, from: .now)) {
            try await normalised(request, context: context)
        }
    }

    private func normalised(_ request: Request, context: WebRequestContext) async throws -> Response {
        var head = request.head
        let raw = head.path ?? "/"
        let queryStart = raw.firstIndex(of: "?") ?? raw.endIndex
        head.path = WebPath.normalised(raw[..<queryStart]) + raw[queryStart...]
        let isHead = head.method == .head
        if isHead { head.method = .get }
        var response = try await inner.respond(to: Request(head: head, body: request.body), context: context)
        if isHead {
            let length = response.body.contentLength
            response.body = ResponseBody()
            response.headers[.contentLength] = length.map(String.init)
        }
        return response
    }
}

/// Access control for every request:
/// - a request whose `Host` is not one the server answers to (``HostAllowList``) gets a 400,
///   so another site's page cannot reach it through DNS rebinding;
/// - paths arrive normalised by ``RequestNormaliser``, the spelling the router matched;
/// - with `YADTQ_WEB_TOKEN` set, pages need a login session (a cookie whose id lives in
///   Redis) and the API and `/metrics` need `Authorization: Bearer <token>` (read-only
///   calls also accept the page's session, so the page can poll them);
/// - a POST from another site is refused (its `Origin` or `Sec-Fetch-Site` says so),
///   every form carries a double-submit CSRF token checked by ``FormFields/requireCSRF(_:)``,
///   and `POST /api/tasks` takes only `application/json`, which a cross-site form cannot send;
/// - every response gets a strict Content-Security-Policy (no inline script, nothing
///   from another origin) and no-sniff / no-framing headers.
struct WebSecurityMiddleware: RouterMiddleware {
    typealias Context = WebRequestContext

    static let csrfCookie = "yadtq_csrf"
    static let sessionCookie = "yadtq_session"
    /// How long a login lasts.
    static let sessionLifetime = Duration.seconds(7 * 24 * 3600)

    let token: String?
    let allowedHosts: HostAllowList
    let backend: WebBackend

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        let existingCSRF = request.cookies[Self.csrfCookie].map(\.value).flatMap { Self.isToken($0) ? $0 : nil }
        context.csrfToken = existingCSRF ?? Self.randomToken()
        var response: Response
        do {
            try requireAllowedHost(request)
            if request.method == .post { try Self.requireSameOrigin(request) }
            // A public path needs no session, so it is not looked up: the login form and the
            // style sheet must not wait for (or fail with) a stalled Redis.
            let isPublic = Self.isPublic(request.uri.path)
            context.isSignedIn = isPublic ? token == nil : try await isAuthorized(request)
            if context.isSignedIn || isPublic {
                response = try await next(request, context)
            } else {
                response = Self.challenge(request)
            }
        } catch {
            response = WebResponse.response(for: WebError.from(error), request: request, context: context)
        }
        // Only pages carry forms; API answers need no CSRF cookie.
        if existingCSRF == nil, response.headers[.contentType]?.hasPrefix("text/html") == true {
            response.setCookie(backend.configuration.cookie(Self.csrfCookie, value: context.csrfToken))
        }
        response.headers[.contentSecurityPolicy] =
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }

    /// Refuses a request for a host name this server does not answer to.
    private func requireAllowedHost(_ request: Request) throws(WebError) {
        let authority = request.head.authority
        guard !allowedHosts.allows(authority) else { return }
        throw WebError(
            status: .badRequest,
            message: allowedHosts.refusal(of: authority, setting: .web))
    }

    /// Paths anyone may fetch: the health check, the style sheet and script, and the login form.
    static func isPublic(_ path: String) -> Bool {
        path == "/healthz" || path == "/login" || path.hasPrefix("/static/")
    }

    static func isAPI(_ path: String) -> Bool { path == "/api" || path.hasPrefix("/api/") }

    /// Paths that programs fetch with the bearer token: the API, and `/metrics` for a
    /// Prometheus scrape, which cannot sign in through the login form.
    static func takesBearerToken(_ path: String) -> Bool { isAPI(path) || path == "/metrics" }

    private func isAuthorized(_ request: Request) async throws -> Bool {
        guard let token else { return true }
        let path = request.uri.path
        if Self.takesBearerToken(path), let header = request.headers[.authorization] {
            guard let credentials = Self.bearerCredentials(header) else { return false }
            return Self.constantTimeEqual(credentials, token)
        }
        // A session cookie is enough for pages and for the API calls a page makes; an API
        // POST needs the bearer token, so a page's cookie can never submit through the API.
        guard !(Self.isAPI(path) && request.method != .get),
            let session = request.cookies[Self.sessionCookie]?.value, Self.isToken(session)
        else { return false }
        return try await backend.read { try $0.isWebSession(session, fingerprint: Self.sessionFingerprint(of: token)) }
    }

    /// The token of an `Authorization: Bearer <token>` header; the scheme's name is
    /// case-insensitive (RFC 7235: `bearer`, `BEARER`), spaces after it are skipped; `nil`
    /// for another scheme.
    static func bearerCredentials(_ header: String) -> String? {
        guard let space = header.firstIndex(of: " "), header[..<space].lowercased() == "bearer" else { return nil }
        return String(header[space...].drop { $0 == " " })
    }

    /// What a login session keeps of the token it signed in with, so that it ends when the
    /// token changes and a server with another token in the same namespace does not take it;
    /// a digest, so that Redis never holds the token itself.
    static func sessionFingerprint(of token: String) -> String {
        SHA256.hex("yadtq-web session\n\(token)".utf8)
    }

    /// 401 with a JSON body for the paths that take the bearer token and for live page
    /// updates; a redirect to the login form for pages.
    private static func challenge(_ request: Request) -> Response {
        let path = request.uri.path
        if takesBearerToken(path) || request.headers[PageLayout.liveHeader] != nil {
            var response = WebResponse.json(
                WebError(
                    status: .unauthorized,
                    message: "this server needs its token: send Authorization: Bearer <YADTQ_WEB_TOKEN>"))
            response.headers[.wwwAuthenticate] = "Bearer realm=\"yadtq\""
            return response
        }
        let target = request.method == .get ? request.uri.description : "/"
        return Response.redirect(to: URLText.link("/login", ["next": target]), type: .found)
    }

    /// Refuses a POST that a browser says came from another site.
    private static func requireSameOrigin(_ request: Request) throws(WebError) {
        let refusal = WebError(
            status: .forbidden, message: "cross-site request refused: submit the form from this server's own pages")
        if request.headers[HTTPField.Name("Sec-Fetch-Site")!] == "cross-site" { throw refusal }
        guard let origin = request.headers[.origin] else { return }
        let host = request.head.authority ?? ""
        guard let schemeEnd = origin.range(of: "://"), origin[schemeEnd.upperBound...] == host else { throw refusal }
    }

    /// 256 random bits as 64 hex digits, from the system's secure generator.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// Cookie values this server issues: hex digits and dashes, nothing a header could misread.
    static func isToken(_ value: String) -> Bool {
        (16...128).contains(value.utf8.count) && value.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0.isHexDigit }
    }

    /// Compares without stopping at the first difference, so response times do not reveal the token.
    static func constantTimeEqual(_ left: String, _ right: String) -> Bool {
        let a = Array(left.utf8)
        let b = Array(right.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self)
    }
}

/// The fields of an `application/x-www-form-urlencoded` body.
struct FormFields: Sendable {
    private var values: [String: String] = [:]

    /// Reads at most ``SubmissionInput/maximumBodyBytes`` of the request's body.
    static func read(_ request: Request) async throws -> FormFields {
        let body = try await RequestBodyReader.collect(request)
        var fields = FormFields()
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            fields.values[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    subscript(name: String) -> String { values[name] ?? "" }

    /// Checks the form's hidden `csrf` field against the browser's CSRF cookie.
    func requireCSRF(_ context: WebRequestContext) throws(WebError) {
        guard WebSecurityMiddleware.constantTimeEqual(self["csrf"], context.csrfToken) else {
            throw WebError(
                status: .forbidden,
                message: "the form's security token is missing or stale: reload the page and submit it again")
        }
    }
}

/// Reads request bodies with the size limit and the message every route uses.
enum RequestBodyReader {
    static func collect(_ request: Request) async throws -> [UInt8] {
        let limit = SubmissionInput.maximumBodyBytes
        let tooLarge = WebError(
            status: .contentTooLarge,
            message: "the request body is larger than \(limit / 1024) KiB: send fewer tasks at a time")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw tooLarge }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            // NIO's "too many bytes", which Hummingbird reports as a bare 413.
            throw tooLarge
        }
    }
}
