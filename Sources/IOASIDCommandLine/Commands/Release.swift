import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid release ID --set SID --holder H`.
    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "release",
            abstract: "Release a hold (kernel ioasid_put); a free-pending ID nothing else holds back is reclaimed.",
            discussion: """
                Prints the ID's state afterwards: allocated, free-pending, or free (reclaimed). Exit 2 \
                when the holder does not hold the ID.

                EXAMPLES:
                  ioasid release 7 --set 2 --holder kvm
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: IDInSet
        @Option(help: ArgumentHelp("The holder's name.", valueName: "name"))
        var holder: String

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("release", ["id": "\(target.id)", "holder": "\(Names.escaped(holder))"]) { () throws(IOASIDError) in
                    try store.release(target.ioasid, in: target.set, holder: holder)
                }
                let state = (try? store.find(target.ioasid))?.state
                struct View: Encodable { let id: UInt32; let set: UInt32; let holder: String; let state: String }
                try Output(global).emit(
                    View(id: target.id, set: target.owner.set, holder: holder, state: IDStateName.json(state)),
                    text: "\(Names.escaped(holder)) released \(target.id) (\(IDStateName.text(state)))"
                )
            }
        }
    }
}
