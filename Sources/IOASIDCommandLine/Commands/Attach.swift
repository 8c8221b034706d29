import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid attach ID --set SID --guest G`.
    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "attach",
            abstract: "Map a guest ID to a host ID inside its set (commits BIND).",
            discussion: """
                Refused (exit 1) when the guest ID is already mapped in the set, the ID already has one, \
                another set owns it, or the set is frozen.

                EXAMPLES:
                  ioasid attach 7 --set 2 --guest 102
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: IDInSet
        @Option(help: ArgumentHelp("The guest ID.", valueName: "guest"))
        var guest: UInt32

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("attach", ["id": "\(target.id)", "guest": "\(guest)"]) { () throws(IOASIDError) in
                    try store.attach(guest: guest, to: target.ioasid, in: target.set)
                }
                struct View: Encodable { let id: UInt32; let set: UInt32; let guest: UInt32 }
                try Output(global).emit(
                    View(id: target.id, set: target.owner.set, guest: guest),
                    text: "guest \(guest) → host \(target.id) in set \(target.owner.set)"
                )
            }
        }
    }
}
