// The `ioasid` command-line tool; the commands live in IOASIDCommandLine.
import IOASIDCommandLine

#if canImport(Glibc)
import Glibc
#endif

/// Ignores SIGPIPE (a closed pipe is then a write error, reported with exit 3
/// and the reason, instead of a silent death), then runs ``IOASIDCommand``.
@main
enum IOASIDMain {
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        exit(IOASIDCommand.mainBlocking())
    }
}
