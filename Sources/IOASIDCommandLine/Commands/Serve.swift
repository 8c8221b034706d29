import ArgumentParser
import Foundation
import IOASIDStore

#if canImport(Glibc)
import Glibc
#endif

extension IOASIDCommand {
    /// `ioasid serve`: runs the `ioasid-serve` binary installed beside `ioasid`.
    struct Serve: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Serve the store over HTTP/1.1 on a Unix socket (runs ioasid-serve).",
            discussion: """
                Runs the ioasid-serve program found beside ioasid with the store and the options given \
                (see `ioasid-serve --help` once it is built, and the README). The service is optional: \
                ioasid and the library keep working directly on the store beside it.

                It is a separate program so that ioasid needs no SwiftNIO; build it with
                  swift build -c release --product ioasid-serve

                EXAMPLES:
                  ioasid --store /var/lib/ioasid serve
                  ioasid serve --socket /run/ioasid.sock --metrics 127.0.0.1:9464
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(parsing: .allUnrecognized, help: "Options for ioasid-serve (--socket, --metrics, --allow-uid, --allow-gid, …).")
        var options: [String] = []

        func run() throws {
            try Output.run(global) {
                let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
                let server = Text.directory(of: own) + "/ioasid-serve"
                guard FileManager.default.isExecutableFile(atPath: server) else {
                    throw AdvisedError(
                        error: IOASIDError(.storageFailure, "ioasid-serve is not installed beside ioasid (looked for \(server))"),
                        hint: "build it with `swift build -c release --product ioasid-serve` (the same build directory as ioasid)"
                    )
                }
                try IOASIDStore.checkFiles(at: global.storePath)
                var arguments = [server, "--store", global.storePath]
                if global.json { arguments.append("--json-logs") }
                if global.verbose { arguments.append("--verbose") }
                // Parsed as the global option (where a client would send its commands): for
                // serve it is where the service listens.
                if let socket = global.socket { arguments += ["--socket", socket] }
                arguments += options
                let argv = arguments.map { strdup($0) } + [nil]
                execv(server, argv)
                let code = errno
                throw IOASIDError(.storageFailure, "cannot run \(server): \(String(cString: strerror(code)))")
            }
        }
    }
}
