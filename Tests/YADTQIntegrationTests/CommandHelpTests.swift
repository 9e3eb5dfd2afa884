import Foundation
import Testing
import YADTQCore

/// The built commands' help shows the core's defaults, formatted as their flags take them:
/// a default changed in the core changes the help with it.
@Suite("Command help", .enabled(if: IntegrationStack.isAvailable, "needs the commands scripts/test builds"))
struct CommandHelpTests {
    /// `command arguments --help` as printed, with the help's line breaks and indentation undone.
    private func help(_ command: String, _ arguments: [String] = []) throws -> String {
        let outcome = try IntegrationStack(label: "help").runCommand(command, arguments: arguments + ["--help"], input: [])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        return outcome.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    @Test("yadtq-worker shows its defaults from WorkerOptions, Retention and ListenAddress")
    func worker() throws {
        let text = try help("yadtq-worker")
        let worker = WorkerOptions(name: "", topic: "")
        #expect(text.contains("YADTQ_KEEP_SUCCEEDED; default \(Retention.standard.succeeded.flagText))"), "\(text)")
        #expect(text.contains("YADTQ_KEEP_FAILED; default \(Retention.standard.failed.flagText))"))
        #expect(text.contains("http://\(ListenAddress().host):PORT/metrics"))
        #expect(text.contains("(default: \(ListenAddress().host))"))
        for duration in [worker.limits.timeout, worker.heartbeatInterval, worker.retry.baseDelay, worker.redisOutageLimit] {
            #expect(text.contains("(default: \(duration.flagText))"), "\(duration.flagText)")
        }
    }

    @Test("yadtq-monitor shows its defaults from FleetMonitor and LivenessRules")
    func monitor() throws {
        let text = try help("yadtq-monitor")
        #expect(text.contains("e.g. 5s or 500ms. (default: \(FleetMonitor.defaultInterval.flagText))"), "\(text)")
        #expect(text.contains("(default: \(LivenessRules().deadAfter.flagText))"))
        #expect(text.contains("(default: \(LivenessRules().forgetAfter.flagText))"))
    }

    @Test("yadtq-web and yadtq-ctl ls show their defaults from ListenAddress, HostAllowList and TaskStore")
    func webAndControl() throws {
        let web = try help("yadtq-web")
        #expect(web.contains("keep the default --host \(ListenAddress().host) then"), "\(web)")
        #expect(web.contains("(default: \(ListenAddress().host))") && web.contains("(default: \(ListenAddress().port))"))
        #expect(web.contains("besides \(HostAllowList.loopback.joined(separator: ", ")) and --host"))
        #expect(web.contains("for ever. (default: \(ConnectionLimits().idleTimeout.flagText))"), "\(web)")
        #expect(web.contains("until one closes. (default: \(ConnectionLimits().maximumConnections))"))
        #expect(try help("yadtq-ctl", ["ls"]).contains("At most this many tasks. (default: \(TaskStore.defaultListLimit))"))
    }
}
