import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid find ID [--set SID]` and `ioasid find --set SID --guest G`.
    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "find",
            abstract: "Show an ID's record (owning set, state, guest ID, private data, holders).",
            discussion: """
                With --set, refused (exit 1) when another set owns the ID. Exit 2 when it is not \
                allocated. With --set and --guest instead of an ID, prints just the host ID the guest ID \
                maps to in that set (exit 2 when it maps to none).

                EXAMPLES:
                  ioasid find 7
                  ioasid find 7 --set 2
                  ioasid find --set 2 --guest 101
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The ID to look up.", valueName: "id"))
        var id: UInt32?
        @Option(help: ArgumentHelp("Check that this set owns the ID.", valueName: "sid"), completion: Completions.setIDs)
        var set: UInt32?
        @Option(help: ArgumentHelp("Look up the host ID of this guest ID (needs --set).", valueName: "guest"))
        var guest: UInt32?

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
                try Self.show(id ?? 0, in: set, store, global.invocation)
            }
        }

        /// Prints the record of `id` (after checking that `set` owns it, if given);
        /// also run by ``QuickLookup``.
        static func show(_ id: UInt32, in set: UInt32?, _ store: IOASIDStore, _ invocation: Invocation) throws {
            let id = IOASID(id)
            let info = try set.map { set throws(IOASIDError) in try store.find(id, in: SetID(set)) } ?? store.find(id)
            let view = IDView(info, holders: try store.holders(of: id))
            try Output(invocation).emit(view, text: view.text)
        }
    }
}
