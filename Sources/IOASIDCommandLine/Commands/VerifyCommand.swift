import ArgumentParser
import Foundation
import IOASIDStore

/// `ioasid verify [--repair]`.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every invariant of the store in one read transaction.",
        discussion: """
            Exit 0 when clean, 1 when any invariant is broken (each violation is listed with a code and \
            the records involved). With --repair, first rebuilds in one transaction what is derivable from \
            the primary records (counters, the free index, tokens, guest maps, pending records, dangling \
            holds, unwanted events), says what it changed, then verifies again. Repair never drops an ID \
            that has an owner.
            """
    )

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Rebuild derivable records first, then verify.") var repair = false

    func run() throws {
        try Output.run(global) {
            let store = try repair ? global.openStore() : global.openStoreForReading()
            var repairReport: RepairReport?
            if repair { repairReport = try store.repair() }
            let progress = Progress(global, verb: "verifying")
            let started = ContinuousClock.now
            let report = try store.verify(progress: progress.update)
            progress.finish()
            let elapsed = ContinuousClock.now - started
            struct View: Encodable {
                let clean: Bool
                let structurallySound: Bool
                let pagesChecked: Int
                let idsChecked: Int
                let violationCount: Int
                let violations: [Violation]
                let repair: RepairReport?
            }
            var lines: [String] = []
            if let repairReport {
                lines.append(repairReport.changes.isEmpty ? "repair: nothing to change" : "repair changed:")
                lines += repairReport.changes.map { "  " + $0 }
                lines += repairReport.unrepairable.map { "  cannot repair [\($0.code)] \($0.message)" }
            }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if report.isClean {
                lines.append(String(format: "clean: %d pages and %d IDs checked in %.2f s", report.pagesChecked, report.idsChecked, seconds))
            } else if !report.isStructurallySound {
                lines.append("\(store.path)/data.mdb is structurally damaged (\(report.pagesChecked) pages read); the records were not read:")
                lines += report.violations.map { "  [\($0.code)] \(Names.escaped($0.message)) — \($0.records.joined(separator: ", "))" }
            } else {
                lines.append("\(report.violationCount) violation\(report.violationCount == 1 ? "" : "s") (\(report.idsChecked) IDs checked):")
                lines += report.violations.map { "  [\($0.code)] \(Names.escaped($0.message)) — \($0.records.joined(separator: ", "))" }
            }
            try Output(global).emit(
                View(clean: report.isClean, structurallySound: report.isStructurallySound, pagesChecked: report.pagesChecked,
                     idsChecked: report.idsChecked, violationCount: report.violationCount,
                     violations: report.violations, repair: repairReport),
                text: lines.joined(separator: "\n")
            )
            if !report.isStructurallySound { throw ExitCode(ExitStatus.storeUnusable) }
            if !report.isClean { throw ExitCode(ExitStatus.refused) }
        }
    }
}

/// `ioasid backup DEST [--compact]`.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the live store consistently into a new directory (LMDB's copy, optionally compacted).",
        discussion: "Writers may keep working meanwhile. DEST must not exist or be an empty directory; it is created readable by the owner only."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The directory to create the copy in.") var destination: String
    @Flag(help: "Compact the copy (omit free pages).") var compact = false

    func run() throws {
        try Output.run(global) {
            let store = try global.openStoreForReading()
            let bytes = try store.backup(to: destination, compact: compact)
            struct View: Encodable { let destination: String; let bytes: Int; let compact: Bool }
            try Output(global).emit(
                View(destination: destination, bytes: bytes, compact: compact),
                text: "backed up \(store.path) to \(destination) (\(bytes) bytes\(compact ? ", compacted" : ""))"
            )
        }
    }
}
