import Foundation
import Hummingbird
import Logging
import YADTQCore

/// A `/metrics` endpoint for a process that is not async (the worker): Hummingbird on its
/// own event loop, away from the thread that runs the tasks.
public enum MetricsEndpoint {
    /// Starts serving `GET /metrics` with the text `exposition` returns, and returns the
    /// port bound (`port` 0 picks a free one). A request whose `Host` is not in `allowedHosts`
    /// gets a 400, as from `yadtq-web`, saying to add the name with `--metrics-allowed-hosts`.
    /// Its connections are bounded by the default ``ConnectionLimits``, as `yadtq-web`'s are.
    /// - Important: Blocks until the server listens (or fails to); serves until the process exits.
    public static func start(
        host: String, port: Int, allowedHosts: HostAllowList, logger: Logger,
        exposition: @escaping @Sendable () -> String
    ) throws -> Int {
        let limits = ConnectionLimits()
        let router = Router()
        router.add(middleware: AllowedHostCheck<BasicRequestContext>(allowedHosts: allowedHosts))
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: exposition())))
        }
        let bound = BoundPort()
        let application = Application(
            router: router,
            server: limits.server,
            configuration: limits.configuration(host: host, port: port, serverName: "yadtq-worker", logger: logger),
            onServerRunning: { channel in bound.set(.success(channel.localAddress?.port ?? port)) },
            logger: logger)
        Task.detached {
            do {
                try await application.run()
            } catch {
                bound.set(.failure(error))
            }
        }
        return try bound.wait()
    }
}

/// Refuses every request, routed or not, whose `Host` the endpoint does not answer to.
private struct AllowedHostCheck<Context: RequestContext>: RouterMiddleware {
    let allowedHosts: HostAllowList

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let authority = request.head.authority
        guard allowedHosts.allows(authority) else {
            let refusal = allowedHosts.refusal(of: authority, setting: .workerMetrics)
            return Response(
                status: .badRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: refusal + "\n")))
        }
        return try await next(request, context)
    }
}

/// The port the server bound, handed from its event loop to the starting thread.
private final class BoundPort: @unchecked Sendable {
    // @unchecked Sendable: `result` is read and written only while holding `condition`.
    private let condition = NSCondition()
    private var result: Result<Int, any Error>?

    func set(_ value: Result<Int, any Error>) {
        condition.withLock {
            if result == nil { result = value }
            condition.broadcast()
        }
    }

    func wait() throws -> Int {
        try condition.withLock {
            while result == nil {
                if !condition.wait(until: Date().addingTimeInterval(10)) {
                    throw YADTQError(.configuration, "the metrics server did not start within 10 s")
                }
            }
            return try result!.get()
        }
    }
}
