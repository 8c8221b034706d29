import ArgumentParser
import IOASIDStore

/// `ioasid alloc --set SID [--min A] [--max B] [--data HEX]`.
struct AllocCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alloc",
        abstract: "Allocate the lowest free ID in a range to a set; prints the ID.",
        discussion: "Refused (exit 1) when the set is at its quota, no ID in the range is free, the set is frozen, or --guest is already mapped in the set."
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: "The set that will own the ID.") var set: UInt32
    @Option(help: "Lowest acceptable ID (default 1).") var min: UInt32?
    @Option(help: "Highest acceptable ID (default capacity − 1).") var max: UInt32?
    @Option(help: "Private data to store with the ID, as hex bytes.") var data: String?
    @Option(help: "Attach this guest ID in the same transaction.") var guest: UInt32?

    func validate() throws {
        if let min, min == 0 { throw ValidationError("--min must be at least 1 (ID 0 is reserved)") }
        if let min, let max, min > max { throw ValidationError("--min (\(min)) is greater than --max (\(max))") }
        if let data, Hex.decode(data) == nil { throw ValidationError("--data must be an even number of hex digits") }
    }

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            let bytes = data.flatMap(Hex.decode) ?? []
            let id: IOASID
            if min != nil || max != nil {
                let capacity = try store.capacity()
                let upper = max ?? capacity - 1
                let lower = min ?? 1
                guard lower <= upper else {
                    throw IOASIDError(.invalidArgument, "range \(lower)…\(upper) is empty")
                }
                id = try store.allocate(in: SetID(set), range: lower...upper, data: bytes, guest: guest)
            } else {
                id = try store.allocate(in: SetID(set), data: bytes, guest: guest)
            }
            struct View: Encodable { let id: UInt32; let set: UInt32 }
            try Output(global).emit(View(id: id.rawValue, set: set), text: "\(id)")
        }
    }
}
