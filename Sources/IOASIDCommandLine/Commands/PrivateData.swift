import ArgumentParser
import IOASIDMigrations
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid data ID --set SID [HEX | --clear]`: an ID's private data.
    struct PrivateData: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "data",
            abstract: "Print, set or clear an ID's private data (hex bytes).",
            discussion: """
                Without HEX or --clear, prints the data (nothing when there is none). Setting is one \
                durable commit, with the ownership check: refused (exit 1) when another set owns the ID \
                or the set is frozen; exit 2 when the ID is not allocated; data over the store's limit \
                (init --max-data-size) is a bad argument (exit 64). An empty HEX is refused: --clear \
                removes the data.

                EXAMPLES:
                  ioasid data 7 --set 2
                  ioasid data 7 --set 2 01f000
                  ioasid data 7 --set 2 --clear
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: IDInSet
        @Argument(help: ArgumentHelp("The new data, as hex bytes.", valueName: "hex"))
        var hex: String?
        @Flag(help: "Remove the data.")
        var clear = false

        func validate() throws {
            if hex != nil && clear { throw ValidationError("give HEX or --clear, not both") }
            if let hex, try Hex.parseData(hex, as: "HEX").isEmpty {
                // An unset shell variable must not wipe the data: clearing is asked for by name.
                throw ValidationError("HEX is empty: give at least one byte, or --clear to remove the data")
            }
        }

        func run() throws {
            try Output.run(global) {
                let store: IOASIDStore
                if let hex, let bytes = Hex.decodeArgument(hex) {
                    store = try global.openStore()
                    try global.operation("data", ["id": "\(target.id)", "bytes": "\(bytes.count)"]) { () throws(IOASIDError) in
                        try store.setData(bytes, for: target.ioasid, in: target.set)
                    }
                } else if clear {
                    store = try global.openStore()
                    try global.operation("data", ["id": "\(target.id)", "bytes": "0"]) { () throws(IOASIDError) in
                        try store.setData([], for: target.ioasid, in: target.set)
                    }
                } else {
                    store = try global.openStoreForReading()
                }
                let info = try store.find(target.ioasid, in: target.set)
                struct View: Encodable { let id: UInt32; let set: UInt32; let data: String? }
                let data = info.data.isEmpty ? nil : Hex.encode(info.data)
                let text: String
                if hex == nil && !clear {
                    text = data ?? ""
                } else {
                    text = data.map { "\(target.id) now carries \(plural(info.data.count, "byte")): \($0)" } ?? "\(target.id) carries no data"
                }
                try Output(global).emit(View(id: target.id, set: target.owner.set, data: data), text: text)
            }
        }
    }
}
