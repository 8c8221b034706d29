import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid status`: the store's identity, store-wide figures and each set's usage.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show the store's ID and schema, capacity, quotas, IDs in use, sets and subscribers.",
            discussion: """
                Opens the store read-only. An ID is allocated (in use) or free-pending (freed, held back \
                by a holder or a subscriber that has not acknowledged its FREE); both count against their \
                set's quota until the ID is reclaimed.

                EXAMPLES:
                  ioasid status
                  ioasid --json status | jq '.sets[] | select(.frozen)'
                """
        )

        @OptionGroup var global: GlobalOptions

        struct View: Encodable {
            let path: String
            let storeID: String
            let schema: UInt32
            let epoch: UInt32
            let capacity: UInt32
            let reserved: UInt64
            let unreserved: UInt64
            let allocated: UInt64
            let freePending: UInt64
            let lastSequence: UInt64
            let sets: [SetView]
            let subscribers: [SubscriberView]
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStoreForReading()
                let status = try global.operation("status", commits: false) { () throws(IOASIDError) in try store.status() }
                let info = try store.info()
                let view = View(
                    path: store.path, storeID: info.storeID, schema: info.schemaVersion, epoch: info.epoch,
                    capacity: status.capacity, reserved: status.reserved, unreserved: status.unreserved,
                    allocated: status.allocated - min(status.allocated, status.freePending), freePending: status.freePending,
                    lastSequence: status.lastSequence,
                    sets: status.sets.map(SetView.init), subscribers: status.subscribers.map(SubscriberView.init)
                )
                try Output(global).emit(view, text: Self.text(view, status))
            }
        }

        static func text(_ view: View, _ status: StoreStatus) -> String {
            var lines = [
                "store:        \(Names.escaped(view.path))",
                "store ID:     \(view.storeID)",
                "schema:       \(view.schema)",
                "epoch:        \(view.epoch)",
                "capacity:     \(view.capacity) (IDs 1…\(view.capacity - 1))",
                "quota:        \(view.reserved) reserved by \(plural(status.sets.count, "set")), \(view.unreserved) unreserved",
                "IDs:          \(view.allocated) allocated, \(view.freePending) free-pending"
                    + (view.freePending > 0 ? " (held back by holders or subscribers)" : ""),
                "sets:",
            ]
            lines += SetTable.render(status.sets, indent: "  ")
            lines.append("subscribers:  \(view.subscribers.count)" + (view.lastSequence > 0 ? " (last event \(view.lastSequence))" : ""))
            if !view.subscribers.isEmpty {
                lines += SubscriberTable.render(view.subscribers, indent: "  ")
            }
            return lines.joined(separator: "\n")
        }
    }
}

/// The table of subscribers that `events list` and `status` print.
enum SubscriberTable {
    static func render(_ subscribers: [SubscriberView], indent: String = "") -> [String] {
        let names = subscribers.map { Names.escaped($0.name) }
        let nameWidth = min(40, max(4, names.map(\.count).max() ?? 0))
        let ackWidth = max(12, subscribers.map { "\($0.acknowledgedThrough)".count }.max() ?? 0)
        let lagWidth = max(3, subscribers.map { "\($0.lag)".count }.max() ?? 0)
        var lines = [
            indent + "NAME".padded(nameWidth) + "  KIND      STATE   " + "ACKNOWLEDGED".leftPadded(ackWidth) + "  " + "LAG".leftPadded(lagWidth)
                + "  OLDEST  FILTER"
        ]
        for (index, subscriber) in subscribers.enumerated() {
            let lapsed = subscriber.state == "lapsed"
            lines.append(
                indent + names[index].padded(nameWidth) + "  " + subscriber.kind.padded(8) + "  " + subscriber.state.padded(6) + "  "
                    + "\(subscriber.acknowledgedThrough)".leftPadded(ackWidth) + "  "
                    + (lapsed ? "-" : "\(subscriber.lag)").leftPadded(lagWidth) + "  " + subscriber.ageText.padded(6) + "  " + subscriber.filterText
            )
        }
        return lines
    }
}
