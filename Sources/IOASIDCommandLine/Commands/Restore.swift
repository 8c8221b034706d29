import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid restore BACKUP STORE`: a backup restored as a new store, in a new epoch.
    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Restore a backup as a new store directory; it starts a new epoch.",
            discussion: """
                Copies BACKUP (a directory made by `ioasid backup`) into STORE, which must not exist, \
                privately and atomically, and opens it: the restored store starts a new epoch, so the events \
                it commits from now on never repeat a (store, epoch, sequence) that consumers saw before. \
                Stop every writer first. Events and IDs handed out after the backup was taken are unknown to \
                the restored store: a consumer that acknowledges a sequence beyond its last event is told \
                (storeRestored, exit 1) and should resync. Exit 3 when BACKUP is no store; exit 64 when \
                STORE exists. The global --store is ignored.

                EXAMPLES:
                  ioasid restore /var/backups/ioasid-latest /var/lib/ioasid.restored
                  ioasid restore "$backups/latest" "$IOASID_STORE"
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The backup directory.", valueName: "backup"), completion: .directory)
        var backup: String
        @Argument(help: ArgumentHelp("The new store directory (must not exist).", valueName: "store"), completion: .directory)
        var destination: String

        func validate() throws {
            guard !backup.isEmpty, !destination.isEmpty else { throw ValidationError("the backup and store paths must not be empty") }
        }

        func run() throws {
            try Output.run(global) {
                let store: IOASIDStore
                do {
                    store = try global.operation("restore", ["backup": "\(Names.escaped(backup))", "store": "\(Names.escaped(destination))"]) {
                        () throws(IOASIDError) in
                        try IOASIDStore.restore(from: backup, to: destination, options: global.storeOptions())
                    }
                } catch let error as IOASIDError where error.code == .notInitialized {
                    // The backup is missing: `ioasid init` (the usual advice) would not bring it back.
                    throw AdvisedError(error: error, hint: "check the backup's path: a directory that `ioasid backup` made, holding data.mdb")
                }
                let info = try store.info()
                let last = try store.status().lastSequence
                struct View: Encodable { let path: String; let storeID: String; let epoch: UInt32; let lastSequence: UInt64 }
                try Output(global).emit(
                    View(path: destination, storeID: info.storeID, epoch: info.epoch, lastSequence: last),
                    text: "restored \(Names.escaped(backup)) to \(Names.escaped(destination)): store \(info.storeID), epoch \(info.epoch), last event \(last)"
                )
            }
        }
    }
}
