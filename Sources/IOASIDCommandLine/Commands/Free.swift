import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid free ID… --set SID`.
    struct Free: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "free",
            abstract: "Free IDs owned by a set, in one commit (all or none).",
            discussion: """
                Each ID commits a FREE event. An ID that a holder or a subscriber still holds back stays \
                free-pending until it is released or acknowledged; the others are free at once. Refused \
                (exit 1) when another set owns an ID or the set is frozen; exit 2 when an ID is not \
                allocated. Either way nothing is freed.

                With --wait, returns only once every ID freed is back in the pool (reclaimed), like the \
                kernel's ioasid_free returning with the PASID clean; `ioasid find ID` shows what holds a \
                free-pending ID back. With --timeout too, gives up after that long (timedOut, exit 1): the \
                FREE stays committed and the ID free-pending; the wait itself changes nothing.

                EXAMPLES:
                  ioasid free 7 --set 2
                  ioasid free 7 8 9 --set 2
                  ioasid free 7 --set 2 --wait --timeout 30s
                  ioasid --json free 7 --set 2 | jq -r '.ids[0].state'
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The IDs to free.", valueName: "id"))
        var ids: [UInt32]
        @OptionGroup var owner: SetOption
        @Flag(help: "Wait until every ID freed is reclaimed (back in the pool).")
        var wait = false
        @Option(help: ArgumentHelp("With --wait, give up after this long (500ms, 30s, 5m; exit 1).", valueName: "duration"), transform: Durations.parse)
        var timeout: Duration?

        func validate() throws {
            guard !ids.isEmpty else { throw ValidationError("give at least one ID") }
            if timeout != nil, !wait { throw ValidationError("--timeout needs --wait") }
        }

        func run() async throws {
            try await Output.runAsync(global) {
                let store = try global.openStore()
                var seen = Swift.Set<UInt32>()
                let unique = ids.filter { seen.insert($0).inserted }.map { IOASID($0) }
                let freed = try global.operation("free", ["set": "\(owner.set)", "ids": "\(unique.count)"]) { () throws(IOASIDError) -> [Bool] in
                    if unique.count == 1, let id = unique.first { return [try store.free(id, in: owner.setID)] }
                    return try IOASIDError.catching {
                        try store.write { tx in try unique.map { id in try tx.free(id, in: owner.setID) } }
                    }
                }
                if wait {
                    let clock = ContinuousClock()
                    let deadline = timeout.map { clock.now + $0 }
                    for id in unique {
                        let left = deadline.map { $0 - clock.now }
                        let reclaimed = try await store.reclaimed(id, timeout: left.map { Swift.max(.zero, $0) })
                        if !reclaimed {
                            let info = try? store.find(id)
                            var reasons = (info?.holders ?? []).map { "holder \"\(Names.escaped($0))\"" }
                            reasons += (info?.waitingFor ?? []).map { "subscriber \"\(Names.escaped($0))\"" }
                            throw IOASIDError(
                                .timedOut,
                                "ID \(id) is still free-pending after \(timeout.map { Durations.text(milliseconds: Durations.milliseconds($0)) } ?? "the wait")"
                                    + (reasons.isEmpty ? "" : ", held back by " + reasons.joined(separator: ", "))
                            )
                        }
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
