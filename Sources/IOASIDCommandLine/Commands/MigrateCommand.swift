import ArgumentParser
import Foundation
import IOASIDStore
import LMDB

/// `ioasid migrate …`: move a set's namespace between stores.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Live-migrate a set: export (freezing it), import elsewhere, then complete or abort.",
        discussion: """
            ioasid --store A migrate export --set 3 | ioasid --store B migrate import -
            ioasid --store A migrate complete 3      # or: migrate abort 3
            """,
        subcommands: [
            MigrateExportCommand.self, MigrateImportCommand.self,
            MigrateCompleteCommand.self, MigrateAbortCommand.self,
        ]
    )

    @OptionGroup var global: GlobalOptions
}

/// Progress on standard error, only on a terminal and never with `--json`.
struct Progress {
    let enabled: Bool
    let verb: String

    init(_ global: GlobalOptions, verb: String) {
        enabled = !global.json && isatty(STDERR_FILENO) != 0
        self.verb = verb
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled else { return }
        let percent = total == 0 ? 100 : done * 100 / total
        Output.standardError("\r\(verb) \(done)/\(total) IDs (\(percent)%)\u{1B}[K")
    }

    func finish() {
        guard enabled else { return }
        Output.standardError("\r\u{1B}[K")
    }
}

/// `ioasid migrate export --set SID [--out FILE|-] [--force]`.
struct MigrateExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Freeze a set and write its namespace (JSON Lines, versioned, SHA-256 checksummed).",
        discussion: """
            The set stays frozen (allocation, free, attach, detach refused) until migrate complete or abort. \
            With --out, the export is written to a private temporary file beside FILE, synced and renamed \
            into place: FILE never exists half-written. If the export cannot be written (a full disk, a \
            reader that went away), the set is unfrozen again, unless it was frozen before.
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: "The set to export.") var set: UInt32
    @Option(help: "Where to write the export; - for standard output.") var out: String = "-"
    @Flag(help: "Replace FILE if it exists.") var force = false

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            let progress = Progress(global, verb: "exporting")
            let summary: ExportSummary
            if out == "-" {
                summary = try store.exportSet(SetID(set), to: { bytes throws(IOASIDError) in
                    try Output.standardOutput(bytes: bytes)
                }, progress: progress.update)
            } else {
                let file = try AtomicFileWriter(destination: out, replacing: force)
                summary = try store.exportSet(SetID(set), to: { bytes throws(IOASIDError) in try file.write(bytes) }, progress: progress.update)
                try file.commit()
            }
            progress.finish()
            let text = "exported \(summary.header.count) IDs of set \(set) (\(Names.escaped(summary.header.token))) as export \(summary.header.exportID); set \(set) is frozen"
            if out == "-" {
                if !global.json { Output.standardError(text + "\n") }
            } else {
                try Output(global).emit(summary, text: text + "\nwrote \(out)")
            }
        }
    }
}

/// `ioasid migrate import FILE|- [--token T]`.
struct MigrateImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an export as a new set in one transaction; prints the remapped host IDs.",
        discussion: """
            The export is read once: every line is checked and hashed as it arrives, and nothing is \
            written until the whole export, its count and SHA-256 have been verified. Every refusal \
            (bad checksum, truncated, unsupported version, malformed, a line over 64 KiB, data over the \
            store's limit, already imported, token in use, quota beyond unreserved capacity) exits 1 and \
            changes nothing. Host IDs are kept where free here and remapped where not; guest IDs are kept exactly.
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The export file (or FIFO); - for standard input.") var file: String
    @Option(help: "Owner token for the new set (default: the exported one).") var token: String?

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            let validating = Progress(global, verb: "validating")
            let importing = Progress(global, verb: "importing")
            let result = try store.importSet(from: file == "-" ? .standardInput : .file(file), token: token) { phase, done, total in
                (phase == .validating ? validating : importing).update(done, total)
            }
            importing.finish()
            var lines = ["imported \(result.imported) IDs as set \(result.set) (\(Names.escaped(result.token))); \(result.remapped.count) host IDs remapped"]
            for remap in result.remapped {
                lines.append("remapped \(remap.from) → \(remap.to)" + (remap.guest.map { " (guest \($0))" } ?? ""))
            }
            try Output(global).emit(result, text: lines.joined(separator: "\n"))
        }
    }
}

/// `ioasid migrate complete SID`.
struct MigrateCompleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "complete",
        abstract: "Finish a migration at the source: free and destroy the frozen set (FREE events as usual)."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The exported set.") var set: UInt32

    func run() throws {
        try Output.run(global) {
            let result = try global.openStore().completeMigration(of: SetID(set))
            struct View: Encodable { let set: UInt32; let freed: Int; let destroyed: Bool }
            try Output(global).emit(
                View(set: set, freed: result.freed.count, destroyed: result.destroyed),
                text: "migration of set \(set) complete: \(result.freed.count) IDs freed" + (result.destroyed ? ", set destroyed" : ", set destroyed once its free-pending IDs are reclaimed")
            )
        }
    }
}

/// `ioasid migrate abort SID`.
struct MigrateAbortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort",
        abstract: "Abandon a migration at the source: unfreeze the set."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The exported set.") var set: UInt32

    func run() throws {
        try Output.run(global) {
            try global.openStore().abortMigration(of: SetID(set))
            struct View: Encodable { let set: UInt32; let frozen: Bool }
            try Output(global).emit(View(set: set, frozen: false), text: "migration of set \(set) aborted; the set is live again")
        }
    }
}
