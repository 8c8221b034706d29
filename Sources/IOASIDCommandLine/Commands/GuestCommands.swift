import ArgumentParser
import IOASIDStore

/// `ioasid attach ID --set SID --guest G`.
struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Map a guest ID to a host ID inside its set (commits BIND).",
        discussion: "Refused (exit 1) when the guest ID is already mapped in the set, the ID already has one, or the set is frozen."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The host ID.") var id: UInt32
    @Option(help: "The set that owns the ID.") var set: UInt32
    @Option(help: "The guest ID.") var guest: UInt32

    func run() throws {
        try Output.run(global) {
            try global.openStore().attach(guest: guest, to: IOASID(id), in: SetID(set))
            struct View: Encodable { let id: UInt32; let set: UInt32; let guest: UInt32 }
            try Output(global).emit(View(id: id, set: set, guest: guest), text: "guest \(guest) → host \(id) in set \(set)")
        }
    }
}

/// `ioasid detach ID --set SID`.
struct DetachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Remove the guest ID of a host ID (commits UNBIND).",
        discussion: "Exit 2 when the ID has no guest ID; refused (exit 1) when the set is frozen."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The host ID.") var id: UInt32
    @Option(help: "The set that owns the ID.") var set: UInt32

    func run() throws {
        try Output.run(global) {
            let guest = try global.openStore().detach(IOASID(id), in: SetID(set))
            struct View: Encodable { let id: UInt32; let set: UInt32; let guest: UInt32 }
            try Output(global).emit(View(id: id, set: set, guest: guest), text: "detached guest \(guest) from host \(id)")
        }
    }
}
