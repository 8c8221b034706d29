import ArgumentParser
import IOASIDStore

/// `ioasid hold ID --set SID --holder H`.
struct HoldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold",
        abstract: "Take a durable hold on an ID (kernel ioasid_get): freed, it stays free-pending until released.",
        discussion: "Refused (exit 1) for a free-pending ID or another set's ID; exit 2 for an unknown ID."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The ID.") var id: UInt32
    @Option(help: "The set that owns the ID.") var set: UInt32
    @Option(help: "The holder's name (for example kvm or vfio:0000:3b:00.0).") var holder: String

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            let new = try store.retain(IOASID(id), in: SetID(set), holder: holder)
            let holders = try store.holders(of: IOASID(id))
            struct View: Encodable { let id: UInt32; let holder: String; let new: Bool; let holders: [String] }
            try Output(global).emit(
                View(id: id, holder: holder, new: new, holders: holders),
                text: new ? "\(holder) holds \(id)" : "\(holder) already held \(id)"
            )
        }
    }
}

/// `ioasid release ID --set SID --holder H`.
struct ReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Release a hold (kernel ioasid_put); a free-pending ID nothing else holds back is reclaimed.",
        discussion: "Exit 2 when the holder does not hold the ID."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The ID.") var id: UInt32
    @Option(help: "The set that owns the ID.") var set: UInt32
    @Option(help: "The holder's name.") var holder: String

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            try store.release(IOASID(id), in: SetID(set), holder: holder)
            let state = (try? store.find(IOASID(id))).map { $0.state == .freePending ? "free-pending" : "allocated" } ?? "reclaimed"
            struct View: Encodable { let id: UInt32; let holder: String; let state: String }
            try Output(global).emit(View(id: id, holder: holder, state: state), text: "\(holder) released \(id) (\(state))")
        }
    }
}
