import ArgumentParser
import IOASIDStore

/// `ioasid find ID [--set SID]`.
struct FindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "find",
        abstract: "Show an ID's record (owning set, state, private data).",
        discussion: "With --set, refused (exit 1) when another set owns the ID. Exit 2 when it is not allocated."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The ID to look up.") var id: UInt32
    @Option(help: "Check that this set owns the ID.") var set: UInt32?

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            let info = try set.map { try store.find(IOASID(id), in: SetID($0)) } ?? store.find(IOASID(id))
            let view = IDView(info)
            Output(global).emit(view, text: view.text)
        }
    }
}

/// `ioasid find-set ID`.
struct FindSetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "find-set",
        abstract: "Print the ID of the set that owns an ID.",
        discussion: "Exit 2 when the ID is not allocated."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The ID to look up.") var id: UInt32

    func run() throws {
        try Output.run(global) {
            let set = try global.openStore().findSet(IOASID(id))
            struct View: Encodable { let id: UInt32; let set: UInt32 }
            Output(global).emit(View(id: id, set: set.rawValue), text: "\(set)")
        }
    }
}
