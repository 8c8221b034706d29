import ArgumentParser
import Foundation
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid migrate …`: move a set's namespace between stores.
    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract: "Live-migrate a set: export (freezing it), import elsewhere, then complete or abort.",
            discussion: """
                EXAMPLES:
                  ioasid --store A migrate export --set 3 | ioasid --store B migrate import -
                  ioasid --store A migrate export --set 3 --out vm.export
                  ioasid migrate validate vm.export
                  ioasid --store A migrate complete 3      # or: migrate abort 3
                """,
            subcommands: [Export.self, Import.self, Validate.self, Complete.self, Abort.self]
        )

        @OptionGroup var global: GlobalOptions
    }
}

extension IOASIDCommand.Migrate {
    /// `ioasid migrate export --set SID [--out FILE|-] [--force]`.
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export",
            abstract: "Freeze a set and write its namespace (JSON Lines, versioned, SHA-256 checksummed).",
            discussion: """
                The set stays frozen (allocation, free, attach, detach refused) until migrate complete or \
                abort. Written to standard output, the export itself is the output (a JSON Lines stream, \
                even with --json) and the summary goes to stderr. With --out, the export is written to a \
                private temporary file beside FILE, synced and renamed into place: FILE never exists \
                half-written, and an existing FILE is refused unless --force, which replaces only a regular \
                file (never a link, FIFO or device). If the export cannot be \
                written (a full disk, a reader that went away: exit 3), the set is unfrozen again, unless \
                it was frozen before.

                EXAMPLES:
                  ioasid migrate export --set 3 --out /var/tmp/vm.export
                  ioasid --store A migrate export --set 3 | ssh host-b ioasid migrate import -
                """
        )

        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("The set to export.", valueName: "sid"), completion: Completions.setIDs)
        var set: UInt32
        @Option(help: ArgumentHelp("Where to write the export; - for standard output.", valueName: "file"), completion: .file())
        var out: String = "-"
        @Flag(help: "Replace FILE if it exists.")
        var force = false

        func validate() throws {
            guard !out.isEmpty else { throw ValidationError("--out must not be empty") }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let progress = Progress(global, "exporting")
                defer { progress.finish() }
                let summary: ExportSummary
                do {
                if out == "-" {
                    summary = try global.operation("export", ["set": "\(set)"]) { () throws(IOASIDError) in
                        try store.exportSet(SetID(set), to: { bytes throws(IOASIDError) in try Output.standardOutput(bytes: bytes) }, progress: progress.update)
                    }
                } else {
                    if try AtomicFileWriter.regularFileExists(at: out), !force {
                        throw IOASIDError(.invalidArgument, "\(out) exists; pass --force to replace it")
                    }
                    summary = try global.operation("export", ["set": "\(set)", "out": "\(out)"]) { () throws(IOASIDError) in
                        try store.exportSet(SetID(set), toFile: out, replacing: force, progress: progress.update)
                    }
                }
                } catch let error as IOASIDError where error.setLeftFrozen != nil {
                    throw AdvisedError(error: error, hint: "`ioasid migrate abort \(set)` unfreezes it, or `ioasid migrate complete \(set)` finishes the migration")
                }
                progress.finish()
                let text = "exported \(plural(summary.header.count, "ID")) of set \(set) (\(Names.escaped(summary.header.token))) "
                    + "as export \(summary.header.exportID); set \(set) stays frozen until `ioasid migrate complete \(set)` or `migrate abort \(set)`"
                if out == "-" {
                    if !global.json { Output.standardError(text + "\n") }
                } else {
                    struct View: Encodable { let out: String; let export: ExportView }
                    try Output(global).emit(View(out: out, export: ExportView(summary.header, sha256: summary.sha256)), text: text + "\nwrote \(Names.escaped(out))")
                }
            }
        }
    }

    /// `ioasid migrate import FILE|- [--token T]`.
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Import an export as a new set in one transaction; prints the new set's ID.",
            discussion: """
                The export is read once: every line is checked and hashed as it arrives (progress: \
                validating), and nothing is written until the whole export, its count and SHA-256 have \
                been verified; then one transaction applies it (progress: importing). Every refusal (bad \
                checksum, truncated, unsupported version, malformed, a line over 64 KiB, data over the \
                store's limit, already imported, token in use, quota beyond unreserved capacity) exits 1 \
                and changes nothing. Host IDs are kept where free here and remapped where not (listed on \
                stderr, and in --json); guest IDs are kept exactly.

                EXAMPLES:
                  vm=$(ioasid migrate import /var/tmp/vm.export)
                  ssh host-a ioasid migrate export --set 3 | ioasid migrate import -
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The export file (or FIFO); - for standard input.", valueName: "file"), completion: .file())
        var file: String
        @Option(help: ArgumentHelp("Owner token for the new set (default: the exported one).", valueName: "token"))
        var token: String?

        func validate() throws {
            guard !file.isEmpty else { throw ValidationError("the export file must not be empty (use - for standard input)") }
            if let token {
                do { try Names.check(token, as: "token") } catch { throw ValidationError(error.message) }
            }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let progress = Progress(global, "validating")
                defer { progress.finish() }
                var phase = ImportPhase.validating
                let result = try global.operation("import", ["file": "\(file)"]) { () throws(IOASIDError) in
                    try store.importSet(from: file == "-" ? .standardInput : .file(file), token: token) { current, done, total in
                        if current != phase {
                            phase = current
                            progress.phase(current.rawValue)
                        }
                        progress.report(done, total)
                    }
                }
                progress.finish()
                if !global.json {
                    var lines = ["imported \(plural(result.imported, "ID")) as set \(result.set) (\(Names.escaped(result.token))); \(plural(result.remapped.count, "host ID")) remapped"]
                    for remap in result.remapped {
                        lines.append("remapped \(remap.from) → \(remap.to)" + (remap.guest.map { " (guest \($0))" } ?? ""))
                    }
                    Output.standardError(lines.joined(separator: "\n") + "\n")
                }
                struct RemapView: Encodable { let from: UInt32; let to: UInt32; let guest: UInt32? }
                struct View: Encodable { let set: UInt32; let token: String; let exportID: String; let imported: Int; let remapped: [RemapView] }
                try Output(global).emit(
                    View(set: result.set.rawValue, token: result.token, exportID: result.exportID, imported: result.imported,
                         remapped: result.remapped.map { RemapView(from: $0.from.rawValue, to: $0.to.rawValue, guest: $0.guest) }),
                    text: "\(result.set)",
                    committed: "imported \(plural(result.imported, "ID")) as set \(result.set)"
                )
            }
        }
    }

    /// `ioasid migrate validate FILE|-`.
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "validate",
            abstract: "Check an export (format, order, count, SHA-256) without importing it or opening a store.",
            discussion: """
                Reads the export once, with the checks migrate import makes before it writes anything. \
                Exit 0 when it would import (quota and token permitting), 1 with the reason when not.

                EXAMPLES:
                  ioasid migrate validate /var/tmp/vm.export
                  ioasid migrate export --set 3 | ioasid migrate validate -
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The export file (or FIFO); - for standard input.", valueName: "file"), completion: .file())
        var file: String
        @Option(name: .customLong("max-data-size"), help: ArgumentHelp("The destination's limit on private data per ID.", valueName: "bytes"))
        var maxDataSize: Int = IOASIDStore.defaultMaximumDataSize

        func validate() throws {
            guard !file.isEmpty else { throw ValidationError("the export file must not be empty (use - for standard input)") }
            guard maxDataSize >= 0 else { throw ValidationError("--max-data-size must not be negative") }
        }

        func run() throws {
            try Output.run(global) {
                let progress = Progress(global, "validating")
                defer { progress.finish() }
                let check = try global.operation("validate", ["file": "\(file)"], commits: false) { () throws(IOASIDError) in
                    try ExportFormat.validate(from: file == "-" ? .standardInput : .file(file), maximumDataSize: maxDataSize, progress: progress.update)
                }
                progress.finish()
                struct View: Encodable { let valid: Bool; let export: ExportView; let guests: Int; let withData: Int }
                let header = check.header
                try Output(global).emit(
                    View(valid: true, export: ExportView(header), guests: check.guests, withData: check.withData),
                    text: """
                        valid: export \(header.exportID) of set \(header.set) (\(Names.escaped(header.token))), quota \(header.quota), \
                        \(plural(check.count, "ID")) (\(check.guests) with a guest ID, \(check.withData) with data), \
                        made \(Timestamp.rfc3339(milliseconds: header.createdAt)) by store \(header.sourceStore)
                        """
                )
            }
        }
    }

    /// `ioasid migrate complete SID`.
    struct Complete: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "complete",
            abstract: "Finish a migration at the source: free and destroy the frozen set (FREE events as usual).",
            discussion: """
                Refused (exit 1) when the set is not frozen.

                EXAMPLES:
                  ioasid migrate complete 3
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: SetArgument

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let result = try global.operation("migrate complete", ["set": "\(target.set)"]) { () throws(IOASIDError) in
                    try store.completeMigration(of: target.setID)
                }
                struct View: Encodable { let set: UInt32; let freed: Int; let destroyed: Bool }
                try Output(global).emit(
                    View(set: target.set, freed: result.freed.count, destroyed: result.destroyed),
                    text: "migration of set \(target.set) complete: \(plural(result.freed.count, "ID")) freed"
                        + (result.destroyed ? ", set destroyed" : "; the set is destroyed once its free-pending IDs are reclaimed")
                )
            }
        }
    }

    /// `ioasid migrate abort SID`.
    struct Abort: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "abort",
            abstract: "Abandon a migration at the source: unfreeze the set.",
            discussion: """
                Refused (exit 1) when the set is not frozen.

                EXAMPLES:
                  ioasid migrate abort 3
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: SetArgument

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("migrate abort", ["set": "\(target.set)"]) { () throws(IOASIDError) in
                    try store.abortMigration(of: target.setID)
                }
                let view = SetView(try store.set(target.setID))
                try Output(global).emit(view, text: "migration of set \(target.set) aborted; the set is live again")
            }
        }
    }
}
