// `ioasid-serve`: the IOASID store as a host service (see IOASIDService).
import ArgumentParser
import IOASIDService

#if canImport(Glibc)
import Glibc
#endif

/// Ignores SIGPIPE (a client that went away is a write error), then runs ``ServeCommand``.
@main
enum ServeMain {
    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try ServeCommand.parseAsRoot(try ServeCommand.processArguments())
            if let serve = command as? ServeCommand {
                try await serve.run()
            } else {
                try command.run()
            }
        } catch {
            ServeCommand.exit(withError: error)
        }
    }
}
