import Foundation
import Testing
import YADTQCore

/// `yadtq-web` in a real headless browser: Tests/browser/web_e2e.py drives Debian's
/// chromium through chromedriver (selenium). Screenshots of every page land in
/// `.test-artifacts/screenshots/`.
@Suite(
    "Web browser",
    .enabled(if: IntegrationStack.isAvailable, "needs the stack scripts/test starts"),
    .enabled(if: BrowserInstallation.isPresent, "needs chromium and chromedriver (scripts/setup)"))
struct WebBrowserTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("sign in, submit through the form, watch QUEUED turn SUCCESS without a reload, XSS payload shown as text")
    func submitAndWatchInBrowser() throws {
        let stack = try IntegrationStack()
        let server = try WebServerProcess(stack: stack, token: "browser-token")
        defer { server.stop() }
        let screenshots = Self.repository.appendingPathComponent(".test-artifacts/screenshots").path

        let script = Process()
        script.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        script.arguments = [
            "python3", Self.repository.appendingPathComponent("Tests/browser/web_e2e.py").path,
            "--base", server.base, "--token", "browser-token", "--shots", screenshots,
        ]
        let output = Pipe()
        script.standardOutput = output
        let log = try IntegrationStack.artifact("\(stack.settings.namespace)-browser.log")
        script.standardError = log
        try script.run()
        var worker: Process?
        defer {
            WebServerProcess.terminate(script)
            if let worker { WebServerProcess.terminate(worker) }
        }

        // The worker starts only once the page has shown the task QUEUED, so the test
        // sees both statuses however fast the worker is.
        var printed = ""
        let reader = output.fileHandleForReading
        while case let chunk = reader.availableData, !chunk.isEmpty {
            printed += String(decoding: chunk, as: UTF8.self)
            if worker == nil && printed.contains("QUEUED-SEEN") { worker = try stack.startWorker("w-browser") }
        }
        #expect(IntegrationStack.waitForExit(script, timeout: .seconds(180)) == 0, "\(printed); see .test-artifacts/\(stack.settings.namespace)-browser.log")
        #expect(printed.contains("browser test passed"))
        #expect(worker != nil, "the page never showed the task QUEUED")
        // The bad paste (its first line `add 1 2` is valid) queued nothing: only the one echo task exists.
        let counts = try stack.store.counts()
        #expect(counts.values.reduce(0, +) == 1, "\(counts)")
        #expect(try stack.store.typeCounts(["add", "echo"]) == ["add": 0, "echo": 1])
    }
}

/// Debian's chromium and its WebDriver, which `scripts/setup` installs.
enum BrowserInstallation {
    static let isPresent =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
}
