import ArgumentParser
import IOASIDStore

/// `ioasid init`: create and initialise a store.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a store with a capacity and a system set.",
        discussion: "Refused (exit 1) when a store already exists at the path."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "IDs run from 1 to capacity − 1 (ID 0 is reserved).")
    var capacity: UInt32 = 1 << 20

    @Option(name: .customLong("system-quota"), help: "Quota of the system set, reserved from capacity.")
    var systemQuota: UInt32 = 32768

    func validate() throws {
        guard capacity >= 2 else { throw ValidationError("--capacity must be at least 2") }
        guard systemQuota >= 1, systemQuota <= capacity - 1 else {
            throw ValidationError("--system-quota must be between 1 and capacity − 1 (\(capacity - 1))")
        }
    }

    func run() throws {
        try Output.run(global) {
            var options = global.storeOptions(creation: .createNew)
            options.capacity = capacity
            options.systemQuota = systemQuota
            let store = try IOASIDStore(path: global.storePath, options: options)
            let status = try store.status()
            struct Initialized: Encodable { let path: String; let capacity: UInt32; let systemSet: UInt32; let systemQuota: UInt32 }
            try Output(global).emit(
                Initialized(path: store.path, capacity: status.capacity, systemSet: SetID.system.rawValue, systemQuota: systemQuota),
                text: "initialised \(store.path): capacity \(status.capacity), system set \(SetID.system) with quota \(systemQuota)"
            )
        }
    }
}
