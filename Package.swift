// swift-tools-version: 6.1
import PackageDescription


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
        .executable(name: "ioasid-fuzz-import", targets: ["ioasid-fuzz-import"]),
        .executable(name: "ioasid-fuzz-cli", targets: ["ioasid-fuzz-cli"]),
        .executable(name: "ioasid-serve-bench", targets: ["ioasid-serve-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        // The service's dependencies are added below, with its targets.
    ],
    targets: [
        // C: Debian's liblmdb-dev through pkg-config.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // The package's C, in one file: CRC32C with the CPU's instruction,
        // LMDB calls guarded against faults on damaged pages, hidden syscalls.
        .target(
            name: "CLMDBSupport",
            dependencies: ["CLMDB"]
        ),
        // The only module that imports CLMDB (and its C support) and touches pointers.
        .target(
            name: "LMDB",
            dependencies: ["CLMDB", "CLMDBSupport"]
        ),
        // Ordered, immutable schema migrations.
        .target(
            name: "IOASIDMigrations",
            dependencies: ["LMDB"],
            path: "migrations"
        ),
        // The library: domain rules over LMDB.
        .target(
            name: "IOASIDStore",
            dependencies: [
                "LMDB",
                "IOASIDMigrations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // A dependency-free HTTP/1.1 client over a Unix socket (POSIX sockets only):
        // how the CLI talks to `ioasid serve` with --socket / $IOASID_SOCKET.
        .target(
            name: "IOASIDClient",
            dependencies: []
        ),
        // The command-line tool's commands (a library, so the fuzzer can parse in-process).
        .target(
            name: "IOASIDCommandLine",
            dependencies: [
                "IOASIDStore",
                "IOASIDClient",
                "IOASIDMigrations",
                "LMDB",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The command-line tool.
        .executableTarget(
            name: "ioasid",
            dependencies: [
                "IOASIDCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The service beside the in-process async API, in one run (Tools/serve-bench).
        .executableTarget(
            name: "ioasid-serve-bench",
            dependencies: ["IOASIDStore", "IOASIDClient", "LMDB"]
        ),
        // Mutation fuzzer for the export parser and the CLI's argument handling: the
        // fallback of Tools/fuzz where the toolchain has no libFuzzer.
        .executableTarget(
            name: "ioasid-fuzz",
            dependencies: [
                "IOASIDStore", "IOASIDCommandLine", "IOASIDTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // libFuzzer targets (Tools/fuzz builds them with -DLIBFUZZER and
        // --sanitize=fuzzer --sanitize=address; libFuzzer supplies `main`).
        // Built plainly, as `swift build` and `swift test` do, they are corpus
        // replayers and need no sanitizer runtime.
        .executableTarget(
            name: "ioasid-fuzz-import",
            dependencies: ["IOASIDStore", "LMDB", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "ioasid-fuzz-cli",
            dependencies: ["IOASIDCommandLine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Benchmarks: store operations beside LMDB's C API called directly, in the same run.
        // The one exception to "only LMDB imports CLMDB": the raw baselines need the C calls.
        .executableTarget(
            name: "ioasid-bench",
            dependencies: ["IOASIDStore", "IOASIDMigrations", "LMDB", "CLMDB"]
        ),
        // Helpers shared by the tests and the tools: temporary stores that end
        // verified, refusal checks, fixtures, the CLI runner, a replayable RNG.
        .target(
            name: "IOASIDTestSupport",
            dependencies: ["IOASIDStore", "LMDB"]
        ),
        // A workload process for multi-process and crash tests.
        .executableTarget(
            name: "ioasid-worker",
            dependencies: ["IOASIDStore", "LMDB", "IOASIDTestSupport"]
        ),
        .testTarget(
            name: "LMDBTests",
            dependencies: ["LMDB", "IOASIDTestSupport"]
        ),
        .testTarget(
            name: "IOASIDStoreTests",
            dependencies: [
                "IOASIDStore", "LMDB", "IOASIDMigrations", "IOASIDTestSupport", "IOASIDClient", "IOASIDCommandLine",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

/// The host service (`IOASIDService`, `ioasid-serve`) and its dependencies:
/// never a dependency of IOASIDStore, IOASIDCommandLine or ioasid.
/// `IOASID_WITHOUT_SERVICE` (set by `Tools/test --tsan`, whose suites do not
/// include the service's) leaves it out, so NIO and Hummingbird are not built.
if Context.environment["IOASID_WITHOUT_SERVICE"] == nil {
    package.dependencies += [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ]
    package.products += [.executable(name: "ioasid-serve", targets: ["ioasid-serve"])]
    package.targets += [
        // The host service: HTTP/1.1 over a Unix socket (Hummingbird 2 on SwiftNIO),
        // pushed events, Prometheus metrics, graceful shutdown.
        .target(
            name: "IOASIDService",
            dependencies: [
                "IOASIDStore",
                "IOASIDClient",
                "IOASIDCommandLine",
                "IOASIDMigrations",
                "LMDB",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // `ioasid serve` runs this binary (found beside `ioasid`).
        .executableTarget(
            name: "ioasid-serve",
            dependencies: ["IOASIDService", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The service's handlers alone in NIO's test channels (the suites that run
        // ioasid-serve as a process are in IOASIDStoreTests).
        .testTarget(
            name: "IOASIDServiceTests",
            dependencies: [
                "IOASIDService", "IOASIDStore", "IOASIDTestSupport", "LMDB", "IOASIDClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ]
}

/// Strict settings applied to every Swift target in one place: Swift 6 language
/// mode with complete concurrency checking is the default for tools version 6;
/// these add the upcoming features the code relies on.
for target in package.targets where target.type != .system && target.name != "CLMDBSupport" {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("InternalImportsByDefault"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}

/// CI (`.ci/run`) sets IOASID_WARNINGS_AS_ERRORS: a warning in any of the
/// package's own targets, Swift or C, then fails the build. Never set for
/// embedders, so the package stays usable as a dependency.
if Context.environment["IOASID_WARNINGS_AS_ERRORS"] != nil {
    for target in package.targets where target.type != .system {
        if target.name == "CLMDBSupport" {
            target.cSettings = (target.cSettings ?? []) + [.unsafeFlags(["-Werror", "-Wall"])]
        } else {
            target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-warnings-as-errors"])]
        }
    }
}

/// The Tools scripts' release builds (`Tools/lib.sh`, `release_flags`, always with
/// `--static-swift-stdlib`) set IOASID_LINK_DIR: a directory whose linker script
/// `libstdc++.so` stands for the static archive of the C++ runtime, searched first,
/// so that the tool starts without loading it. Only this package's own executables
/// get it; never set for embedders.
if let dir = Context.environment["IOASID_LINK_DIR"], !dir.isEmpty {
    for target in package.targets where target.type == .executable {
        target.linkerSettings = (target.linkerSettings ?? []) + [.unsafeFlags(["-L", dir], .when(configuration: .release))]
    }
}
