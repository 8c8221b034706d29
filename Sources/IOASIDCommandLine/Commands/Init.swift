import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid init`: create and initialise a store.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create a store with a capacity and a system set.",
            discussion: """
                The store is built in a private temporary directory beside DIR, synced and renamed into \
                place: a crash leaves no store or a whole one. Refused (exit 1) when a store exists.

                Capacity: IDs run from 1 to capacity - 1 (ID 0, RID_PASID, is never handed out). PCIe \
                PASIDs are 20 bits, so a capacity above 2^20 (1048576) needs --allow-wide-ids: some \
                IOMMUs support wider IDs, up to 2^32 - 1.

                The system set (set 1, for host SVA) gets --system-quota IDs reserved from capacity; \
                without it, min(32768, capacity / 2), and init says so.

                EXAMPLES:
                  ioasid init
                  ioasid --store /var/lib/ioasid init --capacity 65536 --system-quota 1024
                  ioasid init --capacity 16777216 --allow-wide-ids
                """
        )

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("IDs run from 1 to capacity - 1.", valueName: "n"))
        var capacity: UInt32 = 1 << 20

        @Option(name: .customLong("system-quota"), help: ArgumentHelp("Quota of the system set (default: min(32768, capacity / 2)).", valueName: "n"))
        var systemQuota: UInt32?

        @Option(name: .customLong("max-data-size"), help: ArgumentHelp("The most bytes of private data one ID may carry.", valueName: "bytes"))
        var maxDataSize: UInt32 = UInt32(IOASIDStore.defaultMaximumDataSize)

        @Flag(name: .customLong("allow-wide-ids"), help: "Allow a capacity above 2^20 (IDs wider than PCIe's 20-bit PASIDs).")
        var allowWideIDs = false

        static let pcieCapacity: UInt32 = 1 << 20

        /// The system quota after its default.
        var quota: UInt32 { systemQuota ?? Swift.min(32768, capacity / 2) }

        func validate() throws {
            guard capacity >= 2 else { throw ValidationError("--capacity must be at least 2") }
            if capacity > Self.pcieCapacity && !allowWideIDs {
                throw ValidationError("--capacity \(capacity) is above 2^20 = \(Self.pcieCapacity), the 20 bits of a PCIe PASID; pass --allow-wide-ids if the IOMMU supports wider IDs")
            }
            if let systemQuota, systemQuota < 1 || systemQuota > capacity - 1 {
                throw ValidationError("--system-quota must be between 1 and capacity - 1 (\(capacity - 1)), got \(systemQuota)")
            }
            guard maxDataSize <= IOASIDStore.largestDataSizeLimit else {
                throw ValidationError("--max-data-size must be at most \(IOASIDStore.largestDataSizeLimit)")
            }
        }

        func run() throws {
            try Output.run(global) {
                var options = global.storeOptions(creation: .createNew)
                options.capacity = capacity
                options.systemQuota = quota
                options.maximumDataSize = maxDataSize
                let store = try global.operation("init", ["capacity": "\(capacity)", "systemQuota": "\(quota)"]) { () throws(IOASIDError) in
                    try IOASIDStore(path: global.storePath, options: options)
                }
                let info = try store.info()
                struct View: Encodable {
                    let path: String
                    let storeID: String
                    let schema: UInt32
                    let capacity: UInt32
                    let set: UInt32
                    let systemQuota: UInt32
                    let maxDataSize: Int
                }
                let how = systemQuota == nil ? " (the default: min(32768, capacity / 2))" : ""
                try Output(global).emit(
                    View(path: store.path, storeID: info.storeID, schema: info.schemaVersion, capacity: capacity,
                         set: SetID.system.rawValue, systemQuota: quota, maxDataSize: info.maximumDataSize),
                    text: """
                        initialised \(Names.escaped(store.path)): capacity \(capacity) (IDs 1…\(capacity - 1)), \
                        system set \(SetID.system) with quota \(quota)\(how)
                        """
                )
            }
        }
    }
}
