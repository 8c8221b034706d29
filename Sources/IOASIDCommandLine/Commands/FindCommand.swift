import ArgumentParser
import IOASIDStore

/// `ioasid find ID [--set SID]`.
struct FindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "find",
        abstract: "Show an ID's record (owning set, state, private data).",
        discussion: """
            With --set, refused (exit 1) when another set owns the ID. Exit 2 when it is not allocated.             With --set and --guest instead of an ID, prints just the host ID the guest ID maps to in that set             (exit 2 when it maps to none).
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The ID to look up.") var id: UInt32?
    @Option(help: "Check that this set owns the ID.") var set: UInt32?
    @Option(help: "Look up the host ID of this guest ID (needs --set).") var guest: UInt32?

    func validate() throws {
        if guest != nil {
            guard set != nil else { throw ValidationError("--guest needs --set") }
            guard id == nil else { throw ValidationError("give an ID or --guest, not both") }
        } else if id == nil {
            throw ValidationError("missing ID (or --set with --guest)")
        }
    }

    func run() throws {
        try Output.run(global) {
            let store = try global.openStoreForReading()
            if let guest, let set {
                let host = try store.hostID(forGuest: guest, in: SetID(set))
                struct View: Encodable { let id: UInt32; let set: UInt32; let guest: UInt32 }
                try Output(global).emit(View(id: host.rawValue, set: set, guest: guest), text: "\(host)")
                return
            }
            let id = IOASID(id ?? 0)
            let info = try set.map { try store.find(id, in: SetID($0)) } ?? store.find(id)
            let view = IDView(info)
            try Output(global).emit(view, text: view.text)
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
            let set = try global.openStoreForReading().findSet(IOASID(id))
            struct View: Encodable { let id: UInt32; let set: UInt32 }
            try Output(global).emit(View(id: id, set: set.rawValue), text: "\(set)")
        }
    }
}
