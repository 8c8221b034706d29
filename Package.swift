// swift-tools-version: 6.1
import PackageDescription

/// Strict settings shared by every Swift target: Swift 6 language mode with
/// complete concurrency checking is the default for tools version 6; these add
/// the upcoming features we rely on.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "ioasid",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "IOASIDStore", targets: ["IOASIDStore"]),
        .library(name: "LMDB", targets: ["LMDB"]),
        .executable(name: "ioasid", targets: ["ioasid"]),
        .executable(name: "ioasid-bench", targets: ["ioasid-bench"]),
        .executable(name: "ioasid-worker", targets: ["ioasid-worker"]),
        .executable(name: "ioasid-fuzz", targets: ["ioasid-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // C: Debian's liblmdb-dev through pkg-config.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // The only module that imports CLMDB and touches pointers.
        .target(
            name: "LMDB",
            dependencies: ["CLMDB"],
            swiftSettings: strictSettings
        ),
        // Ordered, immutable schema migrations.
        .target(
            name: "IOASIDMigrations",
            dependencies: ["LMDB"],
            path: "migrations",
            swiftSettings: strictSettings
        ),
        // The library: domain rules over LMDB.
        .target(
            name: "IOASIDStore",
            dependencies: [
                "LMDB",
                "IOASIDMigrations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        // The command-line tool's commands (a library, so the fuzzer can parse in-process).
        .target(
            name: "IOASIDCommandLine",
            dependencies: [
                "IOASIDStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The command-line tool.
        .executableTarget(
            name: "ioasid",
            dependencies: [
                "IOASIDCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // Mutation fuzzer for the export parser and the CLI's argument handling.
        .executableTarget(
            name: "ioasid-fuzz",
            dependencies: [
                "IOASIDStore", "IOASIDCommandLine", "ToolSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        // Benchmarks: store operations beside LMDB's C API called directly, in the same run.
        // The one exception to "only LMDB imports CLMDB": the raw baselines need the C calls.
        .executableTarget(
            name: "ioasid-bench",
            dependencies: ["IOASIDStore", "LMDB", "CLMDB"],
            swiftSettings: strictSettings
        ),
        // Helpers shared by the tools and tests (a replayable random generator).
        .target(
            name: "ToolSupport",
            swiftSettings: strictSettings
        ),
        // A workload process for multi-process and crash tests.
        .executableTarget(
            name: "ioasid-worker",
            dependencies: ["IOASIDStore", "LMDB", "ToolSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LMDBTests",
            dependencies: ["LMDB"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "IOASIDStoreTests",
            dependencies: ["IOASIDStore", "LMDB", "IOASIDMigrations", "ToolSupport"],
            exclude: ["Fixtures"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
