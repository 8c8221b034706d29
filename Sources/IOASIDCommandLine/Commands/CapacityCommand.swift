import ArgumentParser
import IOASIDStore

/// `ioasid capacity [N]`: show or change the capacity.
struct CapacityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capacity",
        abstract: "Print the capacity, or change it.",
        discussion: "Growing always works. Shrinking is refused (exit 1) while an ID or reserved quota lies above the new limit."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The new capacity (IDs 1 … N − 1).")
    var newCapacity: UInt32?

    func run() throws {
        try Output.run(global) {
            let store = try newCapacity == nil ? global.openStoreForReading() : global.openStore()
            if let newCapacity { try store.setCapacity(newCapacity) }
            let capacity = try store.capacity()
            struct View: Encodable { let capacity: UInt32 }
            try Output(global).emit(View(capacity: capacity), text: "\(capacity)")
        }
    }
}
