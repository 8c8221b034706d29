import ArgumentParser
import IOASIDStore

/// `ioasid free ID --set SID`.
struct FreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "free",
        abstract: "Free an ID owned by a set.",
        discussion: "Refused (exit 1) when another set owns the ID; exit 2 when it is not allocated."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The ID to free.") var id: UInt32
    @Option(help: "The set that owns the ID.") var set: UInt32

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            let freed = try store.free(IOASID(id), in: SetID(set))
            let state = (try? store.find(IOASID(id)))?.state == .freePending ? "free-pending" : "free"
            struct View: Encodable { let id: UInt32; let set: UInt32; let freed: Bool; let state: String }
            try Output(global).emit(
                View(id: id, set: set, freed: freed, state: state),
                text: freed ? "freed \(id) (\(state))" : "\(id) was already free-pending"
            )
        }
    }
}
