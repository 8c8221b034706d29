public import ArgumentParser

/// The `ioasid` command-line tool: the root command and its subcommands.
///
/// The executable's `main.swift` runs `IOASIDCommand.main()`; the fuzzer
/// parses arguments with it in-process.
public struct IOASIDCommand: AsyncParsableCommand {
    /// The tool's name, help and subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "ioasid",
        abstract: "A persistent, crash-consistent IOASID (PCIe PASID) allocator.",
        discussion: """
            The store is a directory (LMDB). It is chosen with --store, else $IOASID_STORE, \
            else ./ioasid-store.

            A command whose answer is one number (a new set, a new ID, a looked-up set) prints \
            just that number. With --json every command prints one JSON document on stdout, and \
            failures print {"error":{"code":…,"message":…}} on stderr.

            EXIT CODES
              0   success
              1   refused by a rule (quota, capacity, duplicate token, wrong set, range exhausted)
              2   no such set or ID
              3   store unusable (corrupt, newer schema, unreadable, not initialised)
              64  usage error (bad arguments)
            """,
        subcommands: [
            InitCommand.self,
            StatusCommand.self,
            SetCommand.self,
            AllocCommand.self,
            FreeCommand.self,
            FindCommand.self,
            FindSetCommand.self,
            CapacityCommand.self,
            AttachCommand.self,
            DetachCommand.self,
            MigrateCommand.self,
            EventsCommand.self,
            VerifyCommand.self,
            BackupCommand.self,
            HoldCommand.self,
            ReleaseCommand.self,
            DemoCommand.self,
        ]
    )

    /// Accepted before the subcommand too (`ioasid --store A status`); every subcommand sees them.
    @OptionGroup var global: GlobalOptions

    /// Creates the command (ArgumentParser fills in the options).
    public init() {}
}
