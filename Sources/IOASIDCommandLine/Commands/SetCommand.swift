import ArgumentParser
import IOASIDStore

/// `ioasid set …`: manage sets.
struct SetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Create, inspect, adjust and free IOASID sets.",
        subcommands: [
            SetCreateCommand.self, SetListCommand.self, SetShowCommand.self,
            SetIDsCommand.self, SetAdjustCommand.self, SetFreeCommand.self,
        ]
    )

    @OptionGroup var global: GlobalOptions
}

/// `ioasid set create --token T --quota Q`.
struct SetCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a set; prints its ID.",
        discussion: "The quota is reserved from capacity: refused (exit 1) when it does not fit, or when the token owns a live set."
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: "The owner token, unique among live sets (for example vm:<uuid>).") var token: String
    @Option(help: "The most IDs the set may hold (at least 1).") var quota: UInt32

    func validate() throws {
        guard quota >= 1 else { throw ValidationError("--quota must be at least 1") }
        guard !token.isEmpty else { throw ValidationError("--token must not be empty") }
    }

    func run() throws {
        try Output.run(global) {
            let set = try global.openStore().createSet(token: token, quota: quota)
            struct View: Encodable { let set: UInt32 }
            try Output(global).emit(View(set: set.rawValue), text: "\(set)")
        }
    }
}

/// `ioasid set list`.
struct SetListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List every set.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try Output.run(global) {
            let sets = try global.openStoreForReading().sets()
            let text = sets.map { "\($0.id)\t\($0.token)\t\($0.allocated)/\($0.quota)" }.joined(separator: "\n")
            try Output(global).emit(sets.map(SetView.init), text: text)
        }
    }
}

/// `ioasid set show SID`.
struct SetShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one set.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The set ID.") var set: UInt32

    func run() throws {
        try Output.run(global) {
            let view = SetView(try global.openStoreForReading().set(SetID(set)))
            try Output(global).emit(view, text: view.text)
        }
    }
}

/// `ioasid set ids SID`.
struct SetIDsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ids", abstract: "List the IDs a set holds, one per line.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The set ID.") var set: UInt32

    func run() throws {
        try Output.run(global) {
            let ids = try global.openStoreForReading().ids(in: SetID(set)).map(\.rawValue)
            try Output(global).emit(ids, text: ids.map(String.init).joined(separator: "\n"))
        }
    }
}

/// `ioasid set adjust SID --quota Q`.
struct SetAdjustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adjust",
        abstract: "Change a set's quota.",
        discussion: "Refused (exit 1) below the IDs the set holds, or when the increase exceeds unreserved capacity."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The set ID.") var set: UInt32
    @Option(help: "The new quota (at least 1).") var quota: UInt32

    func validate() throws {
        guard quota >= 1 else { throw ValidationError("--quota must be at least 1") }
    }

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            try store.adjustQuota(of: SetID(set), to: quota)
            let view = SetView(try store.set(SetID(set)))
            try Output(global).emit(view, text: view.text)
        }
    }
}

/// `ioasid set free SID [--destroy]`.
struct SetFreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "free",
        abstract: "Free every ID of a set; with --destroy, remove the set and return its quota."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The set ID.") var set: UInt32
    @Flag(help: "Destroy the set (the system set cannot be destroyed).") var destroy = false

    func run() throws {
        try Output.run(global) {
            let result = try global.openStore().freeSet(SetID(set), destroy: destroy)
            struct View: Encodable { let set: UInt32; let freed: Int; let destroyed: Bool }
            let text = "freed \(result.freed.count) IDs of set \(set)" + (result.destroyed ? "; set destroyed" : destroy ? "; set destroyed when its free-pending IDs are reclaimed" : "")
            try Output(global).emit(View(set: set, freed: result.freed.count, destroyed: result.destroyed), text: text)
        }
    }
}
