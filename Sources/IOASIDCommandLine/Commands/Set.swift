import ArgumentParser
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid set …`: manage sets.
    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Create, list, inspect, adjust and free IOASID sets.",
            discussion: """
                EXAMPLES:
                  vm=$(ioasid set create --token vm:6f1c2a --quota 1000)
                  vm=$(ioasid set create --token vm:6f1c2a --quota 1000 --lease 30s --owner-pid "$qemu_pid")
                  ioasid set renew "$vm"
                  ioasid set list
                  ioasid set show --token vm:6f1c2a
                  ioasid set free "$vm" --destroy
                """,
            subcommands: [Create.self, List.self, Show.self, IDs.self, Adjust.self, Renew.self, Free.self]
        )

        @OptionGroup var global: GlobalOptions
    }
}

/// `SID`: a set given as an argument.
struct SetArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The set ID.", valueName: "sid"), completion: Completions.setIDs)
    var set: UInt32

    var setID: SetID { SetID(set) }
}

extension IOASIDCommand.Set {
    /// `ioasid set create --token T --quota Q`.
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create a set; prints its ID.",
            discussion: """
                The quota is reserved from capacity: refused (exit 1) when it does not fit in unreserved \
                capacity, or when the token already owns a live set. A token is 1 to 256 bytes of text \
                without control characters.

                An owner that may go away without freeing its set gives --lease (and renews the set with \
                `ioasid set renew SID` at least once per lease) and/or --owner-pid (the owning process, \
                identified by its PID and start time, so a reused PID does not count). `ioasid reap` frees \
                and destroys a set whose lease was not renewed for two lease periods, or whose owner \
                process is gone. --owner-pid of a process that is not running is a usage error (exit 64).

                EXAMPLES:
                  vm=$(ioasid set create --token vm:6f1c2a --quota 1000)
                  vm=$(ioasid set create --token vm:6f1c2a --quota 1000 --lease 30s)
                  vm=$(ioasid set create --token vm:6f1c2a --quota 1000 --owner-pid "$qemu_pid")
                """
        )

        @OptionGroup var global: GlobalOptions
        @Option(help: ArgumentHelp("The owner token, unique among live sets (for example vm:<uuid>).", valueName: "token"))
        var token: String
        @Option(help: ArgumentHelp("The most IDs the set may hold (at least 1).", valueName: "n"))
        var quota: UInt32
        @Option(help: ArgumentHelp("A lease the owner renews (`set renew`); reaped when unrenewed for two leases (30s, 5m).", valueName: "duration"),
                transform: Durations.parse)
        var lease: Duration?
        @Option(name: .customLong("owner-pid"), help: ArgumentHelp("The owning process; the set is reaped once it is gone.", valueName: "pid"))
        var ownerPID: Int32?

        func validate() throws {
            guard quota >= 1 else { throw ValidationError("--quota must be at least 1") }
            do { try Names.check(token, as: "token") } catch { throw ValidationError(error.message) }
            if let ownerPID, ownerPID < 1 { throw ValidationError("--owner-pid must be a process ID (at least 1)") }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let set = try global.operation("set create", ["token": "\(Names.escaped(token))", "quota": "\(quota)"]) { () throws(IOASIDError) in
                    if lease == nil, ownerPID == nil { return try store.createSet(token: token, quota: quota) }
                    return try store.createSet(token: token, quota: quota, owner: SetOwner(lease: lease, process: ownerPID))
                }
                let view = SetView(try store.set(set))
                try Output(global).emit(view, text: "\(set)", committed: "created set \(set)")
            }
        }
    }

    /// `ioasid set list`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List every set: ID, token, allocated, free-pending, quota and flags.",
            discussion: """
                Frozen sets (being migrated) and destroy-pending sets (destroyed, waiting for their last \
                free-pending IDs) are listed with their flag.

                EXAMPLES:
                  ioasid set list
                  ioasid --json set list | jq -r '.sets[].token'
                """
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try Output.run(global) {
                let sets = try global.openStoreForReading().sets()
                struct View: Encodable { let sets: [SetView] }
                try Output(global).emit(View(sets: sets.map(SetView.init)), text: SetTable.render(sets).joined(separator: "\n"))
            }
        }
    }

    /// `ioasid set show SID` or `ioasid set show --token T`.
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one set, by ID or by owner token.",
            discussion: """
                Exit 2 when there is no such set (or no live set owns the token).

                EXAMPLES:
                  ioasid set show 2
                  ioasid set show --token vm:6f1c2a
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("The set ID.", valueName: "sid"), completion: Completions.setIDs)
        var set: UInt32?
        @Option(help: ArgumentHelp("Find the live set this token owns instead.", valueName: "token"))
        var token: String?

        func validate() throws {
            switch (set, token) {
            case (nil, nil): throw ValidationError("give a set ID or --token")
            case (.some, .some): throw ValidationError("give a set ID or --token, not both")
            default: break
            }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStoreForReading()
                let info: SetInfo
                if let token {
                    guard let found = try store.set(withToken: token) else {
                        throw IOASIDError(.noSuchSet, "no live set owns token \(token)")
                    }
                    info = found
                } else {
                    info = try store.set(SetID(set ?? 0))
                }
                let view = SetView(info)
                try Output(global).emit(view, text: view.text)
            }
        }
    }

    /// `ioasid set ids SID`.
    struct IDs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ids",
            abstract: "List the IDs a set holds (allocated and free-pending), one per line, ascending.",
            discussion: """
                EXAMPLES:
                  ioasid set ids 2
                  ioasid --json set ids 2 | jq '.ids | length'
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: SetArgument

        func run() throws {
            try Output.run(global) {
                let ids = try global.openStoreForReading().ids(in: target.setID).map(\.rawValue)
                struct View: Encodable { let set: UInt32; let ids: [UInt32] }
                try Output(global).emit(View(set: target.set, ids: ids), text: ids.map(String.init).joined(separator: "\n"))
            }
        }
    }

    /// `ioasid set adjust SID --quota Q`.
    struct Adjust: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "adjust",
            abstract: "Change a set's quota.",
            discussion: """
                Refused (exit 1) below the IDs the set holds, or when the increase exceeds unreserved \
                capacity.

                EXAMPLES:
                  ioasid set adjust 2 --quota 2000
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: SetArgument
        @Option(help: ArgumentHelp("The new quota (at least 1).", valueName: "n"))
        var quota: UInt32

        func validate() throws {
            guard quota >= 1 else { throw ValidationError("--quota must be at least 1") }
        }

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("set adjust", ["set": "\(target.set)", "quota": "\(quota)"]) { () throws(IOASIDError) in
                    try store.adjustQuota(of: target.setID, to: quota)
                }
                let view = SetView(try store.set(target.setID))
                try Output(global).emit(view, text: view.text)
            }
        }
    }

    /// `ioasid set renew SID`.
    struct Renew: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "renew",
            abstract: "Renew a set's lease (its owner does this at least once per lease).",
            discussion: """
                A set created with --lease is reaped (`ioasid reap`) once it goes unrenewed for two lease \
                periods. Exit 2 when there is no such set; exit 64 when it has no lease.

                EXAMPLES:
                  ioasid set renew 2
                  while sleep 10; do ioasid set renew "$vm" >/dev/null || break; done &
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: SetArgument

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("set renew", ["set": "\(target.set)"]) { () throws(IOASIDError) in
                    try store.renew(target.setID)
                }
                let view = SetView(try store.set(target.setID))
                try Output(global).emit(view, text: view.text)
            }
        }
    }

    /// `ioasid set free SID [--destroy]`.
    struct Free: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "free",
            abstract: "Free every ID of a set in one commit; with --destroy, remove the set and return its quota.",
            discussion: """
                Each freed ID commits a FREE event; IDs that holders or subscribers hold back stay \
                free-pending, and a destroyed set with such IDs goes away once they are reclaimed. The \
                system set cannot be destroyed (exit 1).

                EXAMPLES:
                  ioasid set free 2
                  ioasid set free 2 --destroy
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: SetArgument
        @Flag(help: "Destroy the set as well (not the system set).")
        var destroy = false

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let held = try store.set(target.setID).allocated
                let progress = Progress(global, "freeing \(plural(held, "ID")) of set \(target.set)")
                let result = try progress.whileRunning { () throws(IOASIDError) in
                    try global.operation("set free", ["set": "\(target.set)", "destroy": "\(destroy)"]) { () throws(IOASIDError) in
                        try store.freeSet(target.setID, destroy: destroy)
                    }
                }
                struct View: Encodable { let set: UInt32; let freed: Int; let destroyed: Bool }
                var text = "freed \(plural(result.freed.count, "ID")) of set \(target.set)"
                if result.destroyed {
                    text += "; set destroyed"
                } else if destroy {
                    text += "; the set is destroyed once its free-pending IDs are reclaimed"
                }
                try Output(global).emit(View(set: target.set, freed: result.freed.count, destroyed: result.destroyed), text: text)
            }
        }
    }
}
