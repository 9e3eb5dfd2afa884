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

let package = Package(
    name: "yadtq",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "YADTQCore", targets: ["YADTQCore"]),
        .executable(name: "yadtq-run", targets: ["yadtq-run"]),
        .executable(name: "yadtq-worker", targets: ["yadtq-worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka", pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(
            name: "CHiredis", pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(
            name: "CLua", pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]),
        .target(
            name: "YADTQCore",
            dependencies: [
                "CRdKafka", "CHiredis", "CLua",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings,
            linkerSettings: runtimeLibrarySearchPath),
        .target(
            name: "YADTQCommandLine",
            dependencies: [
                "YADTQCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(
            name: "yadtq-run",
            dependencies: [
                "YADTQCore", "YADTQCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings,
            linkerSettings: runtimeLibrarySearchPath),
        .executableTarget(
            name: "yadtq-worker",
            dependencies: [
                "YADTQCore", "YADTQCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings,
            linkerSettings: runtimeLibrarySearchPath),
        .testTarget(
            name: "YADTQCoreTests",
            dependencies: ["YADTQCore"],
            swiftSettings: strictSettings,
            linkerSettings: runtimeLibrarySearchPath),
        .testTarget(
            name: "YADTQIntegrationTests",
            dependencies: ["YADTQCore"],
            swiftSettings: strictSettings,
            linkerSettings: runtimeLibrarySearchPath),
    ]
)
