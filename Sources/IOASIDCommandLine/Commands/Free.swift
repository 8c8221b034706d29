import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid free ID… --set SID`.
    struct Free: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Free IDs owned by a set, in one commit (all or none).",
            discussion: """
                Each ID commits a FREE event. An ID that a holder or a subscriber still holds back stays \
                free-pending until it is released or acknowledged; the others are free at once. Refused \
                (exit 1) when another set owns an ID or the set is frozen; exit 2 when an ID is not \
                allocated. Either way nothing is freed.

                EXAMPLES:
                  ioasid free 7 --set 2
                  ioasid free 7 8 9 --set 2
                  ioasid --json free 7 --set 2 | jq -r '.ids[0].state'
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The IDs to free.", valueName: "id"))
        var ids: [UInt32]
        @OptionGroup var owner: SetOption

        func validate() throws {
            guard !ids.isEmpty else { throw ValidationError("give at least one ID") }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                var seen = Swift.Set<UInt32>()
                let unique = ids.filter { seen.insert($0).inserted }.map { IOASID($0) }
                let freed = try global.operation("free", ["set": "\(owner.set)", "ids": "\(unique.count)"]) { () throws(IOASIDError) -> [Bool] in
                    if unique.count == 1, let id = unique.first { return [try store.free(id, in: owner.setID)] }
                    return try IOASIDError.catching {
                        try store.write { tx in try unique.map { id in try tx.free(id, in: owner.setID) } }
                    }
                }
                struct Item: Encodable { let id: UInt32; let state: String }
                struct View: Encodable { let set: UInt32; let freed: Int; let ids: [Item] }
                var items: [Item] = []
                var lines: [String] = []
                for (id, didFree) in zip(unique, freed) {
                    let state = (try? store.find(id))?.state
                    items.append(Item(id: id.rawValue, state: IDStateName.json(state)))
                    lines.append(didFree ? "freed \(id) (\(IDStateName.text(state)))" : "\(id) was already free-pending")
                }
                try Output(global).emit(View(set: owner.set, freed: freed.filter { $0 }.count, ids: items), text: lines.joined(separator: "\n"))
            }
        }
    }
}
