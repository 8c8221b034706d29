import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid reap`: free and destroy the sets whose owners went away.
    struct Reap: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reap",
            abstract: "Free and destroy every set whose lease expired or whose owner process is gone.",
            discussion: """
                A set created with --lease is reaped once it has not been renewed for two lease periods; \
                one created with --owner-pid once that process (same PID and start time) is gone. Each \
                reaped set commits SET_EXPIRED, then a FREE per ID and SET_FREE, in one transaction; its \
                quota returns once its free-pending IDs are reclaimed. Frozen sets (being migrated) are \
                left alone. Idempotent and safe to run from several processes at once (each set is reaped \
                once): run it from a timer.

                EXAMPLES:
                  ioasid reap
                  ioasid --json reap | jq -r '.reaped[] | "\\(.set) \\(.reason)"'
                """
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let reaped = try global.operation("reap") { () throws(IOASIDError) in try store.reap() }
                struct Item: Encodable { let set: UInt32; let token: String; let reason: String; let freed: Int; let destroyed: Bool }
                struct View: Encodable { let reaped: [Item] }
                let items = reaped.map {
                    Item(set: $0.set.rawValue, token: $0.token, reason: $0.reason.rawValue, freed: $0.freed, destroyed: $0.destroyed)
                }
                let lines = reaped.map { set in
                    "reaped set \(set.set) (\(Names.escaped(set.token))): "
                        + (set.reason == .leaseExpired ? "lease expired" : "owner process gone")
                        + ", freed \(plural(set.freed, "ID"))" + (set.destroyed ? ", destroyed" : ", destroyed once its free-pending IDs are reclaimed")
                }
                try Output(global).emit(View(reaped: items), text: lines.isEmpty ? "nothing to reap" : lines.joined(separator: "\n"))
            }
        }
    }
}
