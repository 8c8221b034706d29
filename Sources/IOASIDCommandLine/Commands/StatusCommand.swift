import ArgumentParser
import IOASIDStore

/// `ioasid status`: store-wide figures and each set's usage.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show capacity, reserved and unreserved quota, allocated IDs and each set's usage."
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try Output.run(global) {
            let status = try global.openStoreForReading().status()
            struct View: Encodable {
                let capacity: UInt32
                let reserved: UInt64
                let unreserved: UInt64
                let allocated: UInt64
                let freePending: UInt64
                let lastSequence: UInt64
                let sets: [SetView]
                let subscribers: [SubscriberView]
            }
            let view = View(
                capacity: status.capacity, reserved: status.reserved, unreserved: status.unreserved,
                allocated: status.allocated, freePending: status.freePending, lastSequence: status.lastSequence,
                sets: status.sets.map(SetView.init), subscribers: status.subscribers.map(SubscriberView.init)
            )
            try Output(global).emit(view, text: Self.text(status))
        }
    }

    static func text(_ status: StoreStatus) -> String {
        var lines = [
            "capacity:     \(status.capacity) (IDs 1…\(status.capacity - 1))",
            "reserved:     \(status.reserved)",
            "unreserved:   \(status.unreserved)",
            "allocated:    \(status.allocated)",
            "free-pending: \(status.freePending)",
            "sets:         \(status.sets.count)",
        ]
        let drawBars = Output.isTerminal
        for set in status.sets {
            let usage = "\(set.allocated)/\(set.quota)"
            let flags = [set.isSystem ? "system" : nil, set.isFrozen ? "frozen" : nil, set.isDestroyPending ? "destroy-pending" : nil]
                .compactMap { $0 }.joined(separator: ",")
            let label = "  \(String(set.id.rawValue).leftPadded(4)) \(set.token.padded(24))"
            if drawBars {
                lines.append("\(label) \(bar(UInt64(set.allocated), of: UInt64(set.quota))) \(usage) \(flags)")
            } else {
                lines.append("\(label) \(usage) \(flags)")
            }
        }
        lines.append("subscribers:  \(status.subscribers.count) (last event \(status.lastSequence))")
        for subscriber in status.subscribers {
            lines.append("  " + SubscriberView(subscriber).text)
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
