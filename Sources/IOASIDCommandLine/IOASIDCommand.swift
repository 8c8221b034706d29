public import ArgumentParser
import IOASIDStore
import LMDB

/// The `ioasid` command-line tool: the root command; each subcommand lives in
/// `Commands/<Name>.swift` as `extension IOASIDCommand { struct Name }`, with
/// its own subcommands nested in it (`IOASIDCommand.Set.Create`).
///
/// The executable's `main` ignores SIGPIPE and calls ``main(arguments:)``;
/// the fuzzer parses arguments with it in-process.
public struct IOASIDCommand: AsyncParsableCommand {
    /// The tool's version (the `ioasid --version` line).
    public static let version = "0.6.0"

    /// The tool's name, help and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "ioasid",
        abstract: "A persistent, crash-consistent IOASID (PCIe PASID) allocator.",
        discussion: """
            The store is a directory (LMDB): --store DIR, else $IOASID_STORE, else ./ioasid-store.

            A command whose answer is one number (a new set, a new ID, a looked-up set) prints just that \
            number. With --json every command prints one JSON object on stdout (streams print JSON Lines), \
            and a failure prints {"error":{"code":"...","message":"..."}} on stderr; see docs/cli-json.md. \
            Progress of long operations goes to stderr, only on a terminal.

            EXIT CODES:
              code  meaning
              0     success
              1     refused by a rule (quota, capacity, token, wrong set,
                    frozen set, bad export); verify found a violation
              2     not found: no such set, ID, guest ID, subscriber or hold
              3     store unusable: not initialised, corrupt, newer schema,
                    unreadable, I/O failure (disk full, closed pipe)
              64    usage error: bad arguments or options

            EXAMPLES:
              ioasid init
              vm=$(ioasid set create --token vm:6f1c2a --quota 1000)
              pasid=$(ioasid alloc --set "$vm" --guest 101 --data 01f000)
              ioasid find "$pasid" --set "$vm"
              ioasid --json status
              ioasid help set create
            """,
        subcommands: [
            Init.self,
            Status.self,
            Capacity.self,
            Set.self,
            Alloc.self,
            Free.self,
            Find.self,
            FindSet.self,
            PrivateData.self,
            Holders.self,
            Attach.self,
            Detach.self,
            Hold.self,
            Release.self,
            Batch.self,
            Events.self,
            Migrate.self,
            Verify.self,
            Backup.self,
            Restore.self,
            Reap.self,
            Dump.self,
            Serve.self,
            Demo.self,
        ]
    )

    /// Accepted before the subcommand too (`ioasid --store A status`); every subcommand sees them.
    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print the tool's version, the store schema it writes and the LMDB library's version.")
    var version = false

    /// Creates the command (ArgumentParser fills in the options).
    public init() {}

    /// `ioasid --version`; `ioasid` alone prints the help.
    public func run() throws {
        guard version else { throw CleanExit.helpRequest(self) }
        try Output.run(global) {
            struct View: Encodable { let tool: String; let schema: UInt32; let lmdb: String }
            let view = View(tool: Self.version, schema: IOASIDStore.schemaVersion, lmdb: LMDBLibrary.versionString)
            try Output(global).emit(view, text: "ioasid \(view.tool)\nschema \(view.schema)\nLMDB \(view.lmdb)")
        }
    }
}
