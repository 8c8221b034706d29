import ArgumentParser
import Foundation
import IOASIDStore
import LMDB
import Logging

extension IOASIDCommand {
/// `ioasid demo`: a VM's life on a throwaway store.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
            commandName: "demo",
        abstract: "Walk through a VM's life on a throwaway store.",
        discussion: """
            Boot, a VM set, allocations, a refused over-quota allocation, a refused duplicate token, \
            a FREE held back by a consumer, teardown, and a live migration to a second store. Uses new \
            temporary directories, removed afterwards, unless --store DIR is given on the command line \
            (DIR must not exist yet; $IOASID_STORE is not used).

            EXAMPLES:
              ioasid demo
              ioasid --json demo | jq -r '.steps[].title'
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try Output.run(global) {
            var steps: [Step] = []
            func say(_ title: String, _ detail: String) throws(IOASIDError) {
                steps.append(Step(title: title, detail: detail))
                if !global.json { try Output.standardOutput("▸ \(title)\n    \(detail.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n    "))") }
            }

            let directory: String
            let temporary = global.store == nil
            if let store = global.store {
                directory = store
            } else {
                directory = Text.temporaryDirectory() + "/ioasid-demo-\(getpid())-\(UInt32.random(in: 0 ... .max))"
            }
            defer { if temporary { try? FileManager.default.removeItem(atPath: directory) } }

            // 1. Boot.
            var options = global.storeOptions(creation: .createNew)
            options.capacity = 1 << 20
            options.systemQuota = 32768
            let store = try IOASIDStore(path: directory, options: options)
            let boot = try store.status()
            let host = try store.allocate(in: .system)
            try say("Boot", "store at \(Names.escaped(directory))\ncapacity \(boot.capacity) (20-bit PASIDs), system set \(SetID.system) with quota 32768\nfirst host SVA allocation gets ID \(host): ID 0 (RID_PASID) is never handed out")

            // 2. A VM arrives.
            let token = "vm:" + UUID().uuidString.lowercased()
            let vm = try store.createSet(token: token, quota: 1000)
            let afterCreate = try store.status()
            try say("A VM starts", "set \(vm) for \(token), quota 1000 reserved from capacity\nunreserved capacity: \(boot.unreserved) → \(afterCreate.unreserved)")

            // 3. Allocations: lowest free, in a range, with private data.
            let first = try store.allocate(in: vm, data: Array("pgd=0x1f000".utf8))
            let ranged = try store.allocate(in: vm, range: 100...200)
            let second = try store.allocate(in: vm)
            let info = try store.find(first, in: vm)
            try say("Allocations", "lowest free: \(first), then \(second); in range 100…200: \(ranged)\nfind(\(first), in: \(vm)) → data \"\(String(decoding: info.data, as: UTF8.self))\", owner set \(try store.findSet(first))")

            // 4. Fill to quota in one transaction (one durable commit), then one more.
            let held = try store.set(vm).allocated
            try store.write { tx in
                for _ in held..<1000 { _ = try tx.allocate(in: vm) }
            }
            let refused = Self.refusal { () throws(IOASIDError) in _ = try store.allocate(in: vm) }
            try say("Quota", "1000 IDs held (\(1000 - held) allocated in one commit)\nallocation 1001 refused — \(refused)")

            // 5. The same token cannot own a second live set; the wrong set cannot free.
            let duplicate = Self.refusal { () throws(IOASIDError) in _ = try store.createSet(token: token, quota: 1) }
            let wrongSet = Self.refusal { () throws(IOASIDError) in try store.free(first, in: .system) }
            try say("Ownership", "second set for \(token) refused — \(duplicate)\nfreeing \(first) through the system set refused — \(wrongSet)")

            // 6. Free while a consumer still uses the ID: it stays free-pending until acknowledged.
            try store.subscribe("iommu-agent", filter: EventFilter(sets: [vm]))
            try store.free(second, in: vm)
            let pendingState = try store.find(second).state
            let refusedReuse = Self.refusal { () throws(IOASIDError) in _ = try store.allocate(in: .system, range: second.rawValue...second.rawValue) }
            guard let freeEvent = try store.pendingEvents(for: "iommu-agent").last else {
                throw IOASIDError(.internalError, "the demo's subscriber saw no FREE")
            }
            try store.acknowledge("iommu-agent", through: freeEvent.sequence)
            guard let reclaim = try store.pendingEvents(for: "iommu-agent").last else {
                throw IOASIDError(.internalError, "the demo's subscriber saw no RECLAIM")
            }
            let reused = try store.allocate(in: .system, range: second.rawValue...second.rawValue)
            try say("Free while in use", "iommu-agent subscribes to set \(vm); free(\(second)) commits FREE #\(freeEvent.sequence) and returns at once\nID \(second) is \(pendingState == .freePending ? "free-pending" : "allocated"): the host asking for exactly \(second) is refused — \(refusedReuse)\nagent acknowledges #\(freeEvent.sequence) → \(reclaim.kind.rawValue) #\(reclaim.sequence) for ID \(reclaim.id.map(String.init(describing:)) ?? "?"); now the host gets \(reused)")

            // 7. Teardown: every ID freed; the set goes away when the agent has seen every FREE.
            let result = try store.freeSet(vm, destroy: true)
            let waiting = try store.status()
            try store.acknowledge("iommu-agent", through: try store.status().lastSequence)
            let end = try store.status()
            try say("Teardown", "free-set \(vm) --destroy: \(result.freed.count) IDs freed (one FREE each), set destroyed: \(result.destroyed) — \(waiting.freePending) IDs wait for iommu-agent\nagent acknowledges through #\(waiting.lastSequence) → every ID reclaimed, set gone: \(end.sets.allSatisfy { $0.id != vm })\nquota returned: unreserved capacity back to \(end.unreserved); allocated IDs: \(end.allocated)")

            // 8. Live migration to a second host whose store already uses some of the host IDs.
            var destinationOptions = global.storeOptions(creation: .createNew)
            destinationOptions.capacity = 1 << 20
            let destinationPath = directory + "-destination"
            defer { if temporary { try? FileManager.default.removeItem(atPath: destinationPath) } }
            let destination = try IOASIDStore(path: destinationPath, options: destinationOptions)
            let moving = try store.createSet(token: "vm:" + UUID().uuidString.lowercased(), quota: 16)
            var guests: [(UInt32, IOASID)] = []
            for guest: UInt32 in [101, 102, 103] { guests.append((guest, try store.allocate(in: moving, guest: guest))) }
            let busy = try (0..<3).map { _ in try destination.allocate(in: .system) }
            let file = directory + "-export.jsonl"
            // The library's file export: private, atomic, and the set unfrozen again if the file cannot be committed.
            let summary = try store.exportSet(moving, toFile: file)
            let exportedBytes = (try? FileSystem.status(file))?.size ?? 0
            let frozen = Self.refusal { () throws(IOASIDError) in _ = try store.allocate(in: moving) }
            defer { try? FileManager.default.removeItem(atPath: file) }
            let imported = try destination.importSet(from: file)
            let again = Self.refusal { () throws(IOASIDError) in _ = try destination.importSet(from: file) }
            let lookups = try guests.map { guest, source in
                "guest \(guest): host \(source) here → host \(try destination.hostID(forGuest: guest, in: imported.set)) there"
            }
            try store.completeMigration(of: moving)
            try say("Live migration", ([
                "set \(moving) (guest IDs 101, 102, 103) frozen and exported: \(summary.header.count) IDs, \(exportedBytes) bytes, sha256 \(summary.sha256.prefix(12))…",
                "while frozen, allocation is refused — \(frozen)",
                "the destination already uses host IDs \(busy.map(\.description).joined(separator: ", ")); import remapped \(imported.remapped.count): "
                    + imported.remapped.map { "\($0.from)→\($0.to)" }.joined(separator: ", "),
            ] + lookups + [
                "importing the same export again is refused — \(again)",
                "migrate complete: the source freed and destroyed set \(moving)",
            ]).joined(separator: "\n"))

            if global.json {
                struct View: Encodable { let steps: [Step] }
                try Output.standardOutput(Output.encode(View(steps: steps)))
            }
        }
    }

    /// Runs an operation that the demo expects to be refused and describes the refusal.
    static func refusal(_ body: () throws(IOASIDError) -> Void) -> String {
        do {
            try body()
            return "unexpectedly allowed"
        } catch {
            return "\(error.code.name): \(error.message)"
        }
    }

    struct Step: Encodable {
        let title: String
        let detail: String
    }
}
}
