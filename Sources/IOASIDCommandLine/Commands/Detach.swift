import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid detach ID --set SID`.
    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "detach",
            abstract: "Remove the guest ID of a host ID (commits UNBIND).",
            discussion: """
                Prints the guest ID that was detached. Exit 2 when the ID has no guest ID; refused \
                (exit 1) when another set owns the ID or the set is frozen.

                EXAMPLES:
                  ioasid detach 7 --set 2
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: IDInSet

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let guest = try global.operation("detach", ["id": "\(target.id)"]) { () throws(IOASIDError) in
                    try store.detach(target.ioasid, in: target.set)
                }
                struct View: Encodable { let id: UInt32; let set: UInt32; let detachedGuest: UInt32 }
                try Output(global).emit(
                    View(id: target.id, set: target.owner.set, detachedGuest: guest),
                    text: "\(guest)"
                )
            }
        }
    }
}
