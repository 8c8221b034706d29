import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid find-set ID`.
    struct FindSet: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "find-set",
            abstract: "Print the ID of the set that owns an ID.",
            discussion: """
                Exit 2 when the ID is not allocated.

                EXAMPLES:
                  vm=$(ioasid find-set 7)
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The ID to look up.", valueName: "id"))
        var id: UInt32

        func run() throws {
            try Output.run(global) { try Self.show(id, global.invocation) }
        }

        /// Prints the set that owns `id` (also run by ``QuickLookup``).
        static func show(_ id: UInt32, _ invocation: Invocation) throws {
            let set = try invocation.openStoreForReading().findSet(IOASID(id))
            struct View: Encodable { let id: UInt32; let set: UInt32 }
            try Output(invocation).emit(View(id: id, set: set.rawValue), text: "\(set)")
        }
    }
}
