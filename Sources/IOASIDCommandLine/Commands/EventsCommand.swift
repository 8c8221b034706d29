import ArgumentParser
import Foundation
import IOASIDStore

/// `ioasid events …`: durable subscribers and the outbox.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Manage durable subscribers and read the event outbox.",
        discussion: """
            Events (ALLOC, FREE, RECLAIM, SET_CREATE, SET_QUOTA, SET_FREE, BIND, UNBIND) commit in the \
            same transaction as their change. Each subscriber receives the events its filter takes, in \
            order, at least once, until it acknowledges them; an ID it has not acknowledged the FREE of \
            stays free-pending.
            """,
        subcommands: [
            EventsSubscribeCommand.self, EventsListCommand.self, EventsPendingCommand.self,
            EventsTailCommand.self, EventsAckCommand.self, EventsUnsubscribeCommand.self,
        ]
    )

    @OptionGroup var global: GlobalOptions
}

/// Parses `ALLOC`, `alloc`, `set-create`, `SET_CREATE`, … into an event kind.
func parseKind(_ argument: String) throws -> Event.Kind {
    let normalized = argument.uppercased().replacingOccurrences(of: "-", with: "_")
    guard let kind = Event.Kind(rawValue: normalized) else {
        throw ValidationError("unknown event kind '\(argument)'; one of \(Event.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return kind
}

/// `ioasid events subscribe NAME [--set SID]… [--kind KIND]…`.
struct EventsSubscribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Create a durable subscriber; it sees events committed from now on.",
        discussion: "Refused (exit 1) when the name is taken; exit 2 when a --set does not exist."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "A unique name, 1 to 128 bytes.") var name: String
    @Option(name: .customLong("set"), help: "Only events of this set (repeatable; default every set).") var sets: [UInt32] = []
    @Option(
        name: .customLong("kind"),
        help: "Only events of this kind (repeatable; default every kind): ALLOC, FREE, RECLAIM, SET_CREATE, SET_QUOTA, SET_FREE, BIND, UNBIND.",
        transform: parseKind
    )
    var kinds: [Event.Kind] = []

    func run() throws {
        try Output.run(global) {
            let filter = EventFilter(
                sets: sets.isEmpty ? nil : Set(sets.map { SetID($0) }),
                kinds: kinds.isEmpty ? nil : Set(kinds)
            )
            let store = try global.openStore()
            try store.subscribe(name, filter: filter)
            let view = SubscriberView(try store.subscriber(name))
            try Output(global).emit(view, text: "subscribed \(name) from sequence \(view.acknowledgedThrough + 1)")
        }
    }
}

/// `ioasid events list`.
struct EventsListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List subscribers with their lag.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try Output.run(global) {
            let views = try global.openStoreForReading().subscribers().map(SubscriberView.init)
            try Output(global).emit(views, text: views.map(\.text).joined(separator: "\n"))
        }
    }
}

/// `ioasid events pending NAME`.
struct EventsPendingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pending",
        abstract: "Show a subscriber's unacknowledged events (one JSON object per line)."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The subscriber.") var name: String
    @Option(help: "At most this many events.") var limit: Int = .max

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        try Output.run(global) {
            let events = try global.openStoreForReading().pendingEvents(for: name, limit: limit)
            if global.json {
                try Output.standardOutput(Output.encode(events))
            } else {
                for event in events { try Output.standardOutput(Output.encode(event)) }
            }
        }
    }
}

/// `ioasid events tail NAME [--follow] [--ack]`.
struct EventsTailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print a subscriber's events as JSON Lines, optionally following and acknowledging them.",
        discussion: """
            Each event is printed (and flushed) before it is acknowledged, so a consumer killed at any \
            moment sees every unacknowledged event again, with its original sequence number, next time.
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The subscriber.") var name: String
    @Flag(help: "Keep waiting for new events.") var follow = false
    @Flag(help: "Acknowledge each batch once it has been printed.") var ack = false
    @Option(help: "Poll interval in milliseconds for commits made by other processes.") var poll: Int = 100

    func validate() throws {
        guard poll > 0 else { throw ValidationError("--poll must be positive") }
    }

    func run() async throws {
        try await Output.runAsync(global) {
            let store = try ack ? global.openStore() : global.openStoreForReading()
            _ = try store.subscriber(name)
            if !follow {
                let events = try store.pendingEvents(for: name)
                try emit(events, store: store)
                return
            }
            var iterator = store.events(for: name, pollInterval: .milliseconds(poll)).makeAsyncIterator()
            while let batch = try await iterator.nextBatch(limit: 1024) {
                try emit(batch, store: store)
            }
        }
    }

    private func emit(_ events: [Event], store: IOASIDStore) throws {
        guard let last = events.last else { return }
        let lines = events.map { Output.encode($0) }.joined(separator: "\n") + "\n"
        try Output.standardOutput(bytes: Array(lines.utf8))
        if ack { try store.acknowledge(name, through: last.sequence) }
    }
}

/// `ioasid events ack NAME --through SEQ`.
struct EventsAckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ack",
        abstract: "Acknowledge every event of a subscriber up to and including a sequence number."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The subscriber.") var name: String
    @Option(help: "The last sequence number handled.") var through: UInt64

    func run() throws {
        try Output.run(global) {
            let store = try global.openStore()
            try store.acknowledge(name, through: through)
            let view = SubscriberView(try store.subscriber(name))
            try Output(global).emit(view, text: "\(name) acknowledged through \(view.acknowledgedThrough); \(view.lag) pending")
        }
    }
}

/// `ioasid events unsubscribe NAME`.
struct EventsUnsubscribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unsubscribe",
        abstract: "Remove a subscriber, releasing every ID it was holding back."
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The subscriber.") var name: String

    func run() throws {
        try Output.run(global) {
            try global.openStore().unsubscribe(name)
            struct View: Encodable { let unsubscribed: String }
            try Output(global).emit(View(unsubscribed: name), text: "unsubscribed \(name)")
        }
    }
}

/// The JSON and text form of a subscriber.
struct SubscriberView: Encodable {
    let name: String
    let sets: [UInt32]?
    let kinds: [String]?
    let acknowledgedThrough: UInt64
    let lag: Int
    let oldestUnacknowledgedAgeMs: UInt64?

    init(_ info: SubscriberInfo) {
        name = info.name
        sets = info.filter.sets.map { $0.map(\.rawValue).sorted() }
        kinds = info.filter.kinds.map { $0.map(\.rawValue).sorted() }
        acknowledgedThrough = info.acknowledgedThrough
        lag = info.lag
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        oldestUnacknowledgedAgeMs = info.oldestUnacknowledged.map { now > $0 ? now - $0 : 0 }
    }

    var text: String {
        let filter = [sets.map { "sets " + $0.map(String.init).joined(separator: ",") }, kinds.map { "kinds " + $0.joined(separator: ",") }]
            .compactMap { $0 }.joined(separator: "; ")
        let age = oldestUnacknowledgedAgeMs.map { " (oldest \(Self.age($0)) old)" } ?? ""
        return "\(name)\tacked \(acknowledgedThrough)\tlag \(lag)\(age)\t\(filter.isEmpty ? "all events" : filter)"
    }

    static func age(_ ms: UInt64) -> String {
        if ms < 1000 { return "\(ms) ms" }
        if ms < 120_000 { return "\(ms / 1000) s" }
        if ms < 7_200_000 { return "\(ms / 60_000) min" }
        return "\(ms / 3_600_000) h"
    }
}
