import ArgumentParser
import Foundation
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid verify [--repair]`.
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check every invariant of the store in one read transaction.",
            discussion: """
                Walks every page of data.mdb first (exit 3, naming page and database, when the structure \
                is damaged), then checks every record and invariant: exit 0 when clean, 1 when any is \
                broken (each violation listed with a code and the records involved).

                With --repair, first rebuilds in one transaction what is derivable from the primary records \
                (counters, the free index, tokens, guest maps, pending records, dangling holds, unwanted \
                events), says what it changed, then verifies again. Repair never drops an ID that has an \
                owner, and refuses a structurally damaged file.

                EXAMPLES:
                  ioasid verify
                  ioasid verify --repair
                """
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Rebuild derivable records first, then verify.")
        var repair = false

        func run() throws {
            try Output.run(global) {
                let store = try repair ? global.openStore() : global.openStoreForReading()
                var repairReport: RepairReport?
                if repair {
                    repairReport = try global.operation("repair") { () throws(IOASIDError) in try store.repair() }
                }
                let progress = Progress(global, "verifying")
                defer { progress.finish() }
                let started = ContinuousClock.now
                let report = try global.operation("verify", commits: false) { () throws(IOASIDError) in try store.verify(progress: progress.update) }
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
                    lines += repairReport.changes.map { "  " + Names.escaped($0) }
                    lines += repairReport.unrepairable.map { "  cannot repair [\($0.code)] \(Names.escaped($0.message))" }
                }
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let listed = report.violations.map { "  [\($0.code)] \(Names.escaped($0.message)) — \($0.records.map(Names.escaped).joined(separator: ", "))" }
                if report.isClean {
                    lines.append("clean: \(plural(report.pagesChecked, "page")) and \(plural(report.idsChecked, "ID")) checked in \(Text.fixed(seconds, places: 2)) s")
                } else if !report.isStructurallySound {
                    lines.append("\(Names.escaped(store.path))/data.mdb is structurally damaged (\(plural(report.pagesChecked, "page")) read); the records were not read:")
                    lines += listed
                } else {
                    lines.append("\(plural(report.violationCount, "violation")) (\(plural(report.idsChecked, "ID")) checked):")
                    lines += listed
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
}
