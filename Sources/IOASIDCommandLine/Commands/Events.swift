import ArgumentParser
import Foundation
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid events …`: durable subscribers and the outbox.
    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage durable subscribers and read the event outbox.",
            discussion: """
                Events (ALLOC, FREE, RECLAIM, SET_CREATE, SET_QUOTA, SET_FREE, BIND, UNBIND) commit in the \
                same transaction as their change. Each subscriber receives the events its filter takes, in \
                order, at least once, until it acknowledges them; an ID whose FREE it has not acknowledged \
                stays free-pending.

                EXAMPLES:
                  ioasid events subscribe iommu-agent --kind FREE --kind RECLAIM
                  ioasid events tail iommu-agent --follow --ack
                  ioasid events list
                """,
            subcommands: [Subscribe.self, List.self, Pending.self, Tail.self, Ack.self, Unsubscribe.self]
        )

        @OptionGroup var global: GlobalOptions
    }
}

/// Parses `ALLOC`, `alloc`, `set-create`, `SET_CREATE`, … into an event kind.
func parseKind(_ argument: String) throws -> Event.Kind {
    let normalized = argument.uppercased().replacingOccurrences(of: "-", with: "_")
    guard let kind = Event.Kind(rawValue: normalized) else {
        throw ValidationError("unknown event kind '\(Names.escaped(argument))'; one of \(Event.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return kind
}

/// `NAME`: a durable subscriber given as an argument.
struct SubscriberArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The subscriber.", valueName: "name"), completion: Completions.subscribers)
    var name: String
}

extension IOASIDCommand.Events {
    /// `ioasid events subscribe NAME [--set SID]… [--kind KIND]…`.
    struct Subscribe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a durable subscriber; it sees events committed from now on.",
            discussion: """
                Refused (exit 1) when the name is taken; exit 2 when a --set does not exist. A name is 1 \
                to 256 bytes of text without control characters.

                EXAMPLES:
                  ioasid events subscribe iommu-agent
                  ioasid events subscribe audit --set 2 --kind ALLOC --kind FREE
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: ArgumentHelp("A unique name.", valueName: "name"))
        var name: String
        @Option(name: .customLong("set"), help: ArgumentHelp("Only events of this set (repeatable; default: every set).", valueName: "sid"),
                completion: Completions.setIDs)
        var sets: [UInt32] = []
        @Option(
            name: .customLong("kind"),
            help: ArgumentHelp(
                "Only events of this kind (repeatable; default: every kind): ALLOC, FREE, RECLAIM, SET_CREATE, SET_QUOTA, SET_FREE, BIND, UNBIND.",
                valueName: "kind"
            ),
            completion: Completions.eventKinds,
            transform: parseKind
        )
        var kinds: [Event.Kind] = []

        func validate() throws {
            do { try Names.check(name, as: "subscriber name") } catch { throw ValidationError(error.message) }
        }

        func run() throws {
            try Output.run(global) {
                let filter = EventFilter(
                    sets: sets.isEmpty ? nil : Swift.Set(sets.map { SetID($0) }),
                    kinds: kinds.isEmpty ? nil : Swift.Set(kinds)
                )
                let store = try global.openStore()
                try global.operation("subscribe", ["name": "\(Names.escaped(name))"]) { () throws(IOASIDError) in
                    try store.subscribe(name, filter: filter)
                }
                let view = SubscriberView(try store.subscriber(name))
                try Output(global).emit(view, text: "subscribed \(Names.escaped(name)) from event \(view.acknowledgedThrough + 1), \(view.filterText)")
            }
        }
    }

    /// `ioasid events list`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List subscribers: acknowledged sequence, lag, age of the oldest pending event, filter.",
            discussion: """
                EXAMPLES:
                  ioasid events list
                  ioasid --json events list | jq '.subscribers[] | select(.lag > 1000)'
                """
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            try Output.run(global) {
                let views = try global.openStoreForReading().subscribers().map(SubscriberView.init)
                struct View: Encodable { let subscribers: [SubscriberView] }
                try Output(global).emit(
                    View(subscribers: views),
                    text: views.isEmpty ? "no subscribers" : SubscriberTable.render(views).joined(separator: "\n")
                )
            }
        }
    }

    /// `ioasid events pending NAME [--limit N]`.
    struct Pending: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a subscriber's unacknowledged events, oldest first.",
            discussion: """
                Reads only; acknowledges nothing (see events ack, events tail --ack). Exit 2 for an \
                unknown subscriber.

                EXAMPLES:
                  ioasid events pending iommu-agent
                  ioasid events pending iommu-agent --limit 10
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument
        @Option(help: ArgumentHelp("At most this many events (default: all).", valueName: "n"))
        var limit: Int?

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            try Output.run(global) {
                let events = try global.openStoreForReading().pendingEvents(for: subscriber.name, limit: limit ?? .max)
                struct View: Encodable { let name: String; let events: [EventView] }
                try Output(global).emit(
                    View(name: subscriber.name, events: events.map(EventView.init)),
                    text: events.map(Self.text).joined(separator: "\n")
                )
            }
        }

        static func text(_ event: Event) -> String {
            var parts = ["#\(event.sequence)", event.kind.rawValue]
            if let set = event.set { parts.append("set \(set)") }
            if let subscriber = event.subscriber { parts.append("subscriber \(Names.escaped(subscriber))") }
            if let capacity = event.capacity { parts.append("capacity \(capacity)") }
            if let id = event.id { parts.append("id \(id)") }
            if let guest = event.guest { parts.append("guest \(guest)") }
            if let quota = event.quota { parts.append("quota \(quota)") }
            if event.destroy == true { parts.append("destroy") }
            parts.append(Timestamp.rfc3339(milliseconds: event.timestamp))
            if !event.token.isEmpty { parts.append(Names.escaped(event.token)) }
            return parts.joined(separator: " ")
        }
    }

    /// `ioasid events tail NAME [--follow] [--ack]`.
    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stream a subscriber's events as JSON Lines, optionally following and acknowledging them.",
            discussion: """
                Always JSON Lines, one event object per line (the stream form of docs/cli-json.md). Each \
                batch is written before it is acknowledged, so a consumer killed at any moment sees every \
                unacknowledged event again, with its original sequence number, next time.

                EXAMPLES:
                  ioasid events tail iommu-agent
                  ioasid events tail iommu-agent --follow --ack | my-agent
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument
        @Flag(help: "Keep waiting for new events.")
        var follow = false
        @Flag(help: "Acknowledge each batch once it has been written.")
        var ack = false
        @Option(help: ArgumentHelp("Poll interval in milliseconds for commits made by other processes.", valueName: "ms"))
        var poll: Int = 100

        func validate() throws {
            guard poll > 0 else { throw ValidationError("--poll must be positive") }
        }

        func run() async throws {
            try await Output.runAsync(global) {
                let name = subscriber.name
                let store = try ack ? global.openStore() : global.openStoreForReading()
                _ = try store.subscriber(name)
                if !follow {
                    try emit(try store.pendingEvents(for: name), store: store)
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
            let lines = events.map { Output.encode(EventView($0)) }.joined(separator: "\n") + "\n"
            try Output.standardOutput(bytes: Array(lines.utf8))
            if ack {
                try global.operation("ack", ["name": "\(Names.escaped(subscriber.name))", "through": "\(last.sequence)"]) { () throws(IOASIDError) in
                    try store.acknowledge(subscriber.name, through: last.sequence)
                }
            }
        }
    }

    /// `ioasid events ack NAME --through SEQ`.
    struct Ack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Acknowledge every event of a subscriber up to and including a sequence number.",
            discussion: """
                IDs whose FREE is acknowledged and that nothing else holds back are reclaimed (RECLAIM). \
                A sequence beyond the last event is a usage error (exit 64).

                EXAMPLES:
                  ioasid events ack iommu-agent --through 42
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument
        @Option(help: ArgumentHelp("The last sequence number handled.", valueName: "sequence"))
        var through: UInt64

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("ack", ["name": "\(Names.escaped(subscriber.name))", "through": "\(through)"]) { () throws(IOASIDError) in
                    try store.acknowledge(subscriber.name, through: through)
                }
                let view = SubscriberView(try store.subscriber(subscriber.name))
                try Output(global).emit(
                    view,
                    text: "\(Names.escaped(subscriber.name)) acknowledged through \(view.acknowledgedThrough); \(plural(view.lag, "event")) pending"
                )
            }
        }
    }

    /// `ioasid events unsubscribe NAME`.
    struct Unsubscribe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a subscriber, releasing every ID it was holding back.",
            discussion: """
                Exit 2 for an unknown subscriber.

                EXAMPLES:
                  ioasid events unsubscribe iommu-agent
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("unsubscribe", ["name": "\(Names.escaped(subscriber.name))"]) { () throws(IOASIDError) in
                    try store.unsubscribe(subscriber.name)
                }
                struct View: Encodable { let name: String }
                try Output(global).emit(View(name: subscriber.name), text: "unsubscribed \(Names.escaped(subscriber.name))")
            }
        }
    }
}
