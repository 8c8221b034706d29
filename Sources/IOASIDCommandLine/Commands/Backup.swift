import ArgumentParser
import Foundation
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid backup DEST [--compact] [--force]`.
    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Copy the live store consistently into a new directory (LMDB's copy, optionally compacted).",
            discussion: """
                Writers may keep working meanwhile. The copy is made in a private temporary directory \
                beside DEST, synced and renamed into place, so DEST never exists half-written and is \
                readable by the owner only. An existing DEST is refused (exit 64) unless --force, which \
                replaces a previous backup. The copy is a store of its own: restore by stopping writers \
                and moving it into place (docs/operations.md).

                EXAMPLES:
                  ioasid backup /var/backups/ioasid-$(date +%F)
                  ioasid backup /var/backups/ioasid-latest --compact --force
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The directory to create the copy in.", valueName: "dest"), completion: .directory)
        var destination: String
        @Flag(help: "Compact the copy (omit free pages).")
        var compact = false
        @Flag(help: "Replace DEST if it is a previous backup (only data.mdb and lock.mdb, not open elsewhere) or an empty directory.")
        var force = false

        func validate() throws {
            guard !destination.isEmpty else { throw ValidationError("the backup destination must not be empty") }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStoreForReading()
                if !force, FileManager.default.fileExists(atPath: destination) {
                    throw IOASIDError(.invalidArgument, "\(destination) exists; choose a new directory, or pass --force to replace a previous backup")
                }
                let source = store.path + "/data.mdb"
                let total = (try? FileManager.default.attributesOfItem(atPath: source)[.size] as? Int) ?? 0
                let destination = self.destination
                let progress = Progress(global, "backing up", unit: "bytes") {
                    Self.copied(toward: destination).map { (done: $0, total: Swift.max(total, $0)) }
                }
                let bytes = try progress.whileRunning { () throws(IOASIDError) in
                    try global.operation("backup", ["destination": "\(destination)", "compact": "\(compact)"]) { () throws(IOASIDError) in
                        try store.backup(to: destination, compact: compact, replacing: force)
                    }
                }
                struct View: Encodable { let destination: String; let bytes: Int; let compact: Bool }
                try Output(global).emit(
                    View(destination: destination, bytes: bytes, compact: compact),
                    text: "backed up \(Names.escaped(store.path)) to \(Names.escaped(destination)) (\(grouped(bytes)) bytes\(compact ? ", compacted" : ""))"
                )
            }
        }

        /// Bytes written so far into the backup's temporary directory beside
        /// `destination` (`.NAME.ioasid-backup-*/data.mdb`), if one is there.
        static func copied(toward destination: String) -> Int? {
            let url = URL(fileURLWithPath: destination).standardizedFileURL
            let parent = url.deletingLastPathComponent().path
            let prefix = "." + url.lastPathComponent + ".ioasid-backup-"
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return nil }
            for name in names where name.hasPrefix(prefix) && !name.hasSuffix(".old") {
                if let size = try? FileManager.default.attributesOfItem(atPath: parent + "/" + name + "/data.mdb")[.size] as? Int {
                    return size
                }
            }
            return nil
        }
    }
}
