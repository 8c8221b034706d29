import Foundation

/// Compiles Swift source against the modules of this build, for tests that
/// check what compiles (documentation examples) and what must not (misuse).
package enum SwiftSnippet {
    /// The package's root directory.
    package static let packageRoot: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs `swiftc -emit-sil` (type checking and the SIL diagnostics, such as
    /// the move checker's) on `file`, with this build's modules and the C
    /// modules they rest on; returns the compiler's status and output.
    /// The compiler's own temporary directory goes beside `file` (it leaves one
    /// behind in `$TMPDIR` per run), so it goes when the caller's directory does.
    package static func check(file: String, moduleName: String = "Snippet") throws -> CLI.Result {
        try CLI.run(
            [
                "swiftc", "-swift-version", "6", "-emit-sil", "-o", "/dev/null", "-module-name", moduleName,
                "-I", CLI.productsDirectory + "/Modules",
                "-Xcc", "-fmodule-map-file=\(packageRoot)/Sources/CLMDB/module.modulemap",
                "-Xcc", "-fmodule-map-file=\(CLI.productsDirectory)/CLMDBSupport.build/module.modulemap",
                "-Xcc", "-I\(packageRoot)/Sources/CLMDBSupport/include",
                file,
            ],
            product: "/usr/bin/env",
            environment: ["TMPDIR": URL(fileURLWithPath: file).deletingLastPathComponent().path]
        )
    }
}
