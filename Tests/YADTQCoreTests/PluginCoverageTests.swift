import Testing
import YADTQCore

/// What a producer tells about task types the running workers of its topic cannot run.
@Suite("Plugin coverage")
struct PluginCoverageTests {
    static let now: Int64 = 1_800_000_000_000

    static func beat(_ name: String, topic: String = "t", group: String = "workers", state: String = "busy", age: Int64 = 1_000)
        -> TaskStore.WorkerHeartbeat
    {
        .init(name: name, document: ["topic": .string(topic), "group": .string(group), "state": .string(state), "last_heartbeat": .int(now - age)])
    }

    static func plugins(_ types: String...) -> [PluginInfo] { types.map { PluginInfo(type: $0, file: "\($0).lua") } }

    static func coverage(_ heartbeats: [TaskStore.WorkerHeartbeat], _ plugins: [String: [PluginInfo]]) -> PluginCoverage {
        PluginCoverage(topic: "t", group: "workers", heartbeats: heartbeats, plugins: plugins, now: now)
    }

    @Test func aTypeOneRunningWorkerRunsIsFine() {
        let coverage = Self.coverage([Self.beat("w1"), Self.beat("w2")], ["w1": Self.plugins("add"), "w2": Self.plugins("add", "mul")])
        #expect(coverage.warning(for: "add") == nil)
        #expect(coverage.warning(for: "mul") == nil, "one worker is enough: a task may land on either")
    }

    @Test func aTypeNoRunningWorkerHasIsTold() throws {
        let coverage = Self.coverage([Self.beat("w2"), Self.beat("w1")], ["w1": Self.plugins("add", "mul"), "w2": Self.plugins("add")])
        let warning = try #require(coverage.warning(for: "ad"))
        #expect(warning == "task type 'ad' has no plugin on the running workers of topic t (w1, w2): its tasks end FAILED "
            + "(unknown task type) unless ad.lua is added to their plugin folder before they run. They run: add, mul")
    }

    @Test func aPluginThatDoesNotLoadIsTold() throws {
        var broken = PluginInfo(type: "div", file: "div.lua")
        broken.loadError = PluginLoadError(file: "div.lua", line: 3, message: "unexpected symbol near 'x'")
        let coverage = Self.coverage([Self.beat("w1")], ["w1": Self.plugins("add") + [broken]])
        let warning = try #require(coverage.warning(for: "div"))
        #expect(warning.hasPrefix("task type 'div': its plugin does not load on the running workers of topic t (w1: div.lua:3:"))
        #expect(warning.hasSuffix("its tasks end FAILED unless div.lua is mended before they run"))
        let mended = Self.coverage([Self.beat("w1"), Self.beat("w2")], ["w1": [broken], "w2": Self.plugins("div")])
        #expect(mended.warning(for: "div") == nil, "w2 loads it")
    }

    @Test("only running workers of the topic and group count", arguments: [
        beat("w9", topic: "other"), beat("w9", group: "elsewhere"), beat("w9", state: "stopped"), beat("w9", age: 31_000),
    ])
    func onlyRunningConsumersCount(other: TaskStore.WorkerHeartbeat) {
        let coverage = Self.coverage([Self.beat("w1"), other], ["w1": Self.plugins("add"), "w9": Self.plugins("mul")])
        #expect(coverage.warning(for: "mul") != nil, "w9 does not run tasks of topic t")
    }

    @Test func nothingIsToldWhenItIsNotKnown() {
        #expect(Self.coverage([], [:]).warning(for: "ad") == nil, "no worker runs: the topic warning says that")
        let unlisted = Self.coverage([Self.beat("w1"), Self.beat("w2")], ["w1": Self.plugins("add")])
        #expect(unlisted.warning(for: "mul") == nil, "w2 has not published its plugins: it may run mul")
    }
}
