import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid holders ID`.
    struct Holders: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "holders",
            abstract: "List the holders of an ID (durable holds taken with `ioasid hold`), one per line.",
            discussion: """
                A free-pending ID with holders returns to the pool only once each has released it. \
                Exit 2 when the ID is not allocated.

                EXAMPLES:
                  ioasid holders 7
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The ID.", valueName: "id"))
        var id: UInt32

        func run() throws {
            try Output.run(global) {
                let store = try global.openStoreForReading()
                let info = try store.find(IOASID(id))
                let holders = try store.holders(of: IOASID(id))
                struct View: Encodable { let id: UInt32; let set: UInt32; let state: String; let holders: [String] }
                try Output(global).emit(
                    View(id: id, set: info.set.rawValue, state: IDStateName.json(info.state), holders: holders),
                    text: holders.map(Names.escaped).joined(separator: "\n")
                )
            }
        }
    }
}
