// swift-tools-version:6.0
import PackageDescription

/// Debian 12 ships librdkafka 2.0.2, which cannot parse the ApiVersions reply of
/// some current brokers. `scripts/setup` installs a newer, ABI-compatible
/// librdkafka into `/usr/local/lib/yadtq`; these run paths make every binary
/// load it first (then one next to the binary), with nothing for the user to set.
let runtimeLibrarySearchPath: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", "$ORIGIN/lib"]),
    .unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", "/usr/local/lib/yadtq"]),
]

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
let prometheus = Target.Dependency.product(name: "Prometheus", package: "swift-prometheus")

/// A thin command-line executable over the core.
func command(_ name: String, extra: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name, dependencies: ["YADTQCore", "YADTQCommandLine", argumentParser] + extra,
        swiftSettings: strictSettings, linkerSettings: runtimeLibrarySearchPath)
}

func tests(_ name: String, extra: [Target.Dependency] = []) -> Target {
    .testTarget(
        name: name, dependencies: ["YADTQCore"] + extra, swiftSettings: strictSettings,
        linkerSettings: runtimeLibrarySearchPath)
}

let commands = ["yadtq-run", "yadtq-worker", "yadtq-monitor", "yadtq-web", "yadtq-ctl", "yadtq-bench"]

let package = Package(
    name: "yadtq",
    platforms: [.macOS(.v14)],
    products: [.library(name: "YADTQCore", targets: ["YADTQCore"])]
        + commands.map { .executable(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        // The sandbox's C half: a regular C target (compiled once, with strict warnings) over Lua.
        .target(
            name: "CLuaSandbox", dependencies: ["CLua"],
            cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wno-unused-parameter", "-Werror"])]),
        .target(
            name: "YADTQCore", dependencies: ["CRdKafka", "CHiredis", "CLua", "CLuaSandbox", logging, metrics, prometheus],
            swiftSettings: strictSettings, linkerSettings: runtimeLibrarySearchPath),
        .target(
            name: "YADTQCommandLine", dependencies: ["YADTQCore", argumentParser, logging],
            swiftSettings: strictSettings),
        .target(
            name: "YADTQWeb",
            dependencies: ["YADTQCore", .product(name: "Hummingbird", package: "hummingbird"), logging],
            swiftSettings: strictSettings),
        command("yadtq-run"),
        command("yadtq-worker", extra: ["YADTQWeb"]),
        command("yadtq-monitor"),
        command("yadtq-web", extra: ["YADTQWeb"]),
        command("yadtq-ctl"),
        command("yadtq-bench"),
        tests("YADTQCoreTests", extra: [.product(name: "PropertyBased", package: "swift-property-based")]),
        tests("YADTQWebTests", extra: ["YADTQWeb"]),
        tests("YADTQIntegrationTests"),
    ]
)
