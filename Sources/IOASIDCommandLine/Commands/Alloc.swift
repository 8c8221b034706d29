import ArgumentParser
import IOASIDMigrations
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid alloc --set SID [--min A] [--max B] [--data HEX] [--guest G] [--count N]`.
    struct Alloc: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "alloc",
            abstract: "Allocate the lowest free ID in a range to a set; prints the ID.",
            discussion: """
                With --count N, allocates N IDs in one commit (all or none) and prints one per line. \
                Refused (exit 1) when the set is at its quota, no ID in the range is free, the set is \
                frozen, or --guest is already mapped in the set; exit 2 when the set does not exist.

                EXAMPLES:
                  pasid=$(ioasid alloc --set 2)
                  ioasid alloc --set 2 --min 100 --max 199 --data 01f000
                  ioasid alloc --set 2 --guest 101
                  ioasid alloc --set 2 --count 16
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var owner: SetOption
        @Option(help: ArgumentHelp("Lowest acceptable ID.", valueName: "id"))
        var min: UInt32 = 1
        @Option(help: ArgumentHelp("Highest acceptable ID (default: capacity - 1).", valueName: "id"))
        var max: UInt32?
        @Option(help: ArgumentHelp("Private data to keep with the ID, as hex bytes (an even number of digits).", valueName: "hex"))
        var data: String?
        @Option(help: ArgumentHelp("Attach this guest ID in the same commit.", valueName: "guest"))
        var guest: UInt32?
        @Option(help: ArgumentHelp("Allocate this many IDs in one commit.", valueName: "n"))
        var count: Int?

        func validate() throws {
            if min == 0 { throw ValidationError("--min must be at least 1 (ID 0 is reserved)") }
            if let max, min > max { throw ValidationError("--min (\(min)) is greater than --max (\(max))") }
            if let data { _ = try Hex.parseData(data) }
            if let count {
                guard count >= 1 else { throw ValidationError("--count must be at least 1") }
                guard count <= 1 << 20 else { throw ValidationError("--count must be at most 1048576") }
                if guest != nil && count > 1 { throw ValidationError("--guest maps one ID; it cannot be used with --count above 1") }
            }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let bytes: [UInt8] = data.flatMap(Hex.decodeArgument) ?? []
                let explicitRange = min != 1 || max != nil
                let metadata: Logger.Metadata = ["set": "\(owner.set)", "count": "\(count ?? 1)"]
                let ids = try global.operation("alloc", metadata) { () throws(IOASIDError) -> [IOASID] in
                    var range: ClosedRange<UInt32>?
                    if explicitRange {
                        let upper: UInt32
                        if let max { upper = max } else { upper = try store.capacity() - 1 }
                        guard min <= upper else { throw IOASIDError(.invalidArgument, "the range \(min)…\(upper) is empty") }
                        range = min...upper
                    }
                    if count == nil {
                        return [try store.allocate(in: owner.setID, range: range, data: bytes, guest: guest)]
                    }
                    let wanted = count ?? 1
                    return try IOASIDError.catching {
                        try store.write { tx in
                            try (0..<wanted).map { index in
                                try tx.allocate(in: owner.setID, range: range, data: bytes, guest: index == 0 ? guest : nil)
                            }
                        }
                    }
                }
                if count == nil, let id = ids.first {
                    struct View: Encodable { let set: UInt32; let id: UInt32 }
                    try Output(global).emit(View(set: owner.set, id: id.rawValue), text: "\(id)", committed: "allocated ID \(id) in set \(owner.set)")
                } else {
                    struct View: Encodable { let set: UInt32; let ids: [UInt32] }
                    try Output(global).emit(
                        View(set: owner.set, ids: ids.map(\.rawValue)), text: ids.map(\.description).joined(separator: "\n"),
                        committed: "allocated \(plural(ids.count, "ID")) in set \(owner.set) (\(idRuns(ids.map(\.rawValue))))"
                    )
                }
            }
        }
    }
}

extension IOASIDError {
    /// Runs `body`, passing an ``IOASIDError`` through and wrapping anything else as `internalError`.
    static func catching<R>(_ body: () throws -> R) throws(IOASIDError) -> R {
        do { return try body() } catch let error as IOASIDError { throw error } catch {
            throw IOASIDError(.internalError, "unexpected error: \(error)")
        }
    }
}
