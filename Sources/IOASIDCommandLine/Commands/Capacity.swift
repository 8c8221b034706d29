import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid capacity [N]`: show or change the capacity.
    struct Capacity: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "capacity",
            abstract: "Print the capacity, or change it.",
            discussion: """
                Growing always works (above 2^20 only with --allow-wide-ids). Shrinking is refused \
                (exit 1) while an ID or reserved quota lies above the new limit.

                EXAMPLES:
                  ioasid capacity
                  ioasid capacity 2097152 --allow-wide-ids
                """
        )

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("The new capacity (IDs 1 to N - 1).", valueName: "n"))
        var newCapacity: UInt32?

        @Flag(name: .customLong("allow-wide-ids"), help: "Allow a capacity above 2^20.")
        var allowWideIDs = false

        func validate() throws {
            if let newCapacity {
                guard newCapacity >= 2 else { throw ValidationError("the capacity must be at least 2") }
                if newCapacity > Init.pcieCapacity && !allowWideIDs {
                    throw ValidationError("capacity \(newCapacity) is above 2^20 = \(Init.pcieCapacity), the 20 bits of a PCIe PASID; pass --allow-wide-ids if the IOMMU supports wider IDs")
                }
            }
        }

        func run() throws {
            try Output.run(global) {
                let store = try newCapacity == nil ? global.openStoreForReading() : global.openStore()
                if let newCapacity {
                    try global.operation("capacity", ["capacity": "\(newCapacity)"]) { () throws(IOASIDError) in try store.setCapacity(newCapacity) }
                }
                let capacity = try store.capacity()
                struct View: Encodable { let capacity: UInt32 }
                try Output(global).emit(View(capacity: capacity), text: "\(capacity)")
            }
        }
    }
}
