import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid hold ID --set SID --holder H`.
    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hold",
            abstract: "Take a durable hold on an ID (kernel ioasid_get): freed, it stays free-pending until released.",
            discussion: """
                Refused (exit 1) for a free-pending ID or another set's ID; exit 2 for an unknown ID. \
                Holding an ID twice under one name is one hold.

                EXAMPLES:
                  ioasid hold 7 --set 2 --holder kvm
                  ioasid hold 7 --set 2 --holder vfio:0000:3b:00.0
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: IDInSet
        @Option(help: ArgumentHelp("The holder's name (for example kvm or vfio:0000:3b:00.0).", valueName: "name"))
        var holder: String

        func validate() throws {
            do { try Names.check(holder, as: "holder name") } catch { throw ValidationError(error.message) }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let new = try global.operation("hold", ["id": "\(target.id)", "holder": "\(Names.escaped(holder))"]) { () throws(IOASIDError) in
                    try store.retain(target.ioasid, in: target.set, holder: holder)
                }
                let holders = try store.holders(of: target.ioasid)
                struct View: Encodable { let id: UInt32; let set: UInt32; let holder: String; let new: Bool; let holders: [String] }
                let name = Names.escaped(holder)
                try Output(global).emit(
                    View(id: target.id, set: target.owner.set, holder: holder, new: new, holders: holders),
                    text: new ? "\(name) holds \(target.id)" : "\(name) already held \(target.id)"
                )
            }
        }
    }
}
