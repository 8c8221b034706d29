import ArgumentParser
import Foundation
import IOASIDStore
import Logging

extension IOASIDCommand {
    /// `ioasid events …`: durable subscribers and the outbox.
    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "events",
            abstract: "Manage durable subscribers and read the event outbox.",
            discussion: """
                Events (ALLOC, FREE, RECLAIM, SET_CREATE, SET_QUOTA, SET_FREE, BIND, UNBIND, SET_EXPIRED, and \
                the store-wide SUBSCRIBER_LAPSED and CAPACITY) commit in the same transaction as their change. \
                Each subscriber receives the events its filter takes, in order, at least once, until it \
                acknowledges them. A gating subscriber (the default) holds back each ID whose FREE it has not \
                acknowledged; an observer (--observe) never does. A subscriber with --max-lag or --max-age \
                lapses when it falls that far behind: it stops holding IDs back and must resync. Every event \
                carries the store's ID and epoch: (store, epoch, sequence) never repeats, even after a restore.

                EXAMPLES:
                  ioasid events subscribe iommu-agent --kind FREE --kind RECLAIM
                  ioasid events subscribe vfio --max-lag 100000 --max-age 10m
                  ioasid events subscribe iommu --after vfio
                  ioasid events consume iommu -- ./teardown-pasids
                  ioasid events list
                """,
            subcommands: [Subscribe.self, List.self, Pending.self, Tail.self, Consume.self, Ack.self, Resync.self, Unsubscribe.self]
        )

        @OptionGroup var global: GlobalOptions
    }
}

/// Parses `ALLOC`, `alloc`, `set-create`, `SET_CREATE`, … into an event kind.
func parseKind(_ argument: String) throws -> Event.Kind {
    let normalized = String(argument.uppercased().map { $0 == "-" ? "_" : $0 })
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
            commandName: "subscribe",
            abstract: "Create a durable subscriber; it sees events committed from now on.",
            discussion: """
                A gating subscriber (the default) holds back every freed ID whose FREE it takes until it \
                acknowledges it. With --observe it only watches: it keeps a cursor but never delays a \
                reclaim (audit logs, metrics). With --max-lag or --max-age it lapses once more events than \
                that are unacknowledged, or the oldest is older than that (judged at each commit): it stops \
                holding IDs back, its events are released, SUBSCRIBER_LAPSED is committed and its reads fail \
                (subscriberLapsed, exit 1) until `events resync`. With --after A it sees an event only once \
                A has acknowledged it (repeat --after for fan-in; chains are allowed, cycles cannot form): \
                quiesce the device (A) before the IOMMU tears the PASID down (this subscriber).

                Refused (exit 1) when the name is taken; exit 2 when a --set or an --after subscriber does \
                not exist. A name is 1 to 256 bytes of text without control characters.

                EXAMPLES:
                  ioasid events subscribe iommu-agent
                  ioasid events subscribe audit --observe --set 2 --kind ALLOC --kind FREE
                  ioasid events subscribe vfio --max-lag 100000 --max-age 10m
                  ioasid events subscribe iommu --after vfio --after kvm
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
        @Flag(help: "Observe only: receive events and keep a cursor, but never hold a freed ID back.")
        var observe = false
        @Option(name: .customLong("max-lag"), help: ArgumentHelp("Lapse when more than this many events it takes are unacknowledged.", valueName: "events"))
        var maxLag: UInt64?
        @Option(
            name: .customLong("max-age"),
            help: ArgumentHelp("Lapse when its oldest unacknowledged event is older than this (500ms, 30s, 10m, 1h).", valueName: "duration"),
            transform: Durations.parse
        )
        var maxAge: Duration?
        @Option(
            name: .customLong("after"),
            help: ArgumentHelp("See an event only once this subscriber has acknowledged it (repeatable).", valueName: "name"),
            completion: Completions.subscribers
        )
        var after: [String] = []

        func validate() throws {
            do { try Names.check(name, as: "subscriber name") } catch { throw ValidationError(error.message) }
            if let maxLag, maxLag < 1 { throw ValidationError("--max-lag must be at least 1") }
            for predecessor in after {
                do { try Names.check(predecessor, as: "subscriber name", existing: true) } catch { throw ValidationError(error.message) }
            }
        }

        func run() throws {
            try Output.run(global) {
                let options = SubscriptionOptions(
                    filter: EventFilter(
                        sets: sets.isEmpty ? nil : Swift.Set(sets.map { SetID($0) }),
                        kinds: kinds.isEmpty ? nil : Swift.Set(kinds)
                    ),
                    kind: observe ? .observer : .gating, maxLag: maxLag, maxAge: maxAge, after: after
                )
                let store = try global.openStore()
                try global.operation("subscribe", ["name": "\(Names.escaped(name))"]) { () throws(IOASIDError) in
                    try store.subscribe(name, options: options)
                }
                let view = SubscriberView(try store.subscriber(name))
                try Output(global).emit(
                    view, text: "subscribed \(Names.escaped(name)) (\(view.kind)) from event \(view.acknowledgedThrough + 1), \(view.filterText)"
                )
            }
        }
    }

    /// `ioasid events list`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List subscribers: kind, state, acknowledged sequence, lag, age of the oldest pending event, filter.",
            discussion: """
                KIND is gating (holds freed IDs back) or observer; STATE is active or lapsed (fell past its \
                lag limit: holds nothing back until `events resync`).

                EXAMPLES:
                  ioasid events list
                  ioasid --json events list | jq '.subscribers[] | select(.lag > 1000)'
                  ioasid --json events list | jq -r '.subscribers[] | select(.state == "lapsed") | .name'
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
            commandName: "pending",
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
            commandName: "tail",
            abstract: "Stream a subscriber's events as JSON Lines, optionally following and acknowledging them.",
            discussion: """
                Always JSON Lines, one event object per line (the stream form of docs/cli-json.md). Each \
                batch is written before it is acknowledged, so a consumer killed at any moment sees every \
                unacknowledged event again, with its original sequence number, next time.

                --ack acknowledges what tail WROTE, not what the reader USED: the pipe and the reader's \
                buffers hold events that are already acknowledged (`tail --follow --ack | head -n 3` \
                acknowledges every event written before head exits), so a reader that dies loses them and \
                their IDs may be reclaimed before it acted. For at-least-once processing use `ioasid events \
                consume NAME -- CMD`, which acknowledges a batch only after CMD handled it and exited 0.

                EXAMPLES:
                  ioasid events tail iommu-agent
                  ioasid events tail iommu-agent --follow --ack | my-agent
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument
        @Flag(help: "Keep waiting for new events.")
        var follow = false
        @Flag(help: "Acknowledge each batch once it has been written (not once it has been used: see `events consume`).")
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
                // A follow ends only when cancelled: in the service, by its shutdown (or the
                // client going away). That is not the command's success.
                throw IOASIDError(.storageFailure, "the event stream was stopped (the service is shutting down)")
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
            commandName: "ack",
            abstract: "Acknowledge every event of a subscriber up to and including a sequence number.",
            discussion: """
                IDs whose FREE is acknowledged and that nothing else holds back are reclaimed (RECLAIM). \
                A sequence beyond the last event is a usage error (exit 64), as is one that a subscriber it \
                runs after (--after) has not acknowledged yet. A lapsed subscriber is refused \
                (subscriberLapsed, exit 1): resync it. A sequence beyond the last event of a store restored \
                from a backup since is refused (storeRestored, exit 1): the events you saw after the backup \
                are gone, so rebuild your state with `events resync`. With --epoch (the `epoch` of the \
                event, as `tail` prints it) the check is exact: a position the restored store no longer \
                shares is refused even after it has committed more events than that.

                EXAMPLES:
                  ioasid events ack iommu-agent --through 42
                  ioasid events ack iommu-agent --through 42 --epoch 1
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument
        @Option(help: ArgumentHelp("The last sequence number handled.", valueName: "sequence"))
        var through: UInt64
        @Option(help: ArgumentHelp("The epoch of that event (its `epoch` field): refused if a restore since lost it.", valueName: "epoch"))
        var epoch: UInt32?

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                try global.operation("ack", ["name": "\(Names.escaped(subscriber.name))", "through": "\(through)"]) { () throws(IOASIDError) in
                    if let epoch { return try store.acknowledge(subscriber.name, through: through, epoch: epoch) }
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
            commandName: "unsubscribe",
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

extension IOASIDCommand.Events {
    /// `ioasid events resync NAME`.
    struct Resync: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "resync",
            abstract: "Bring a (lapsed) subscriber back: print the current state and the sequence to continue after.",
            discussion: """
                In one transaction: reads every set the subscriber's filter takes and their IDs (guest IDs \
                and private data included), and moves the subscriber to the last event, active again. \
                Rebuild your state from the snapshot, then handle the events after `sequence` (events \
                pending, tail, consume). Works on an active subscriber too (it skips what it had not \
                acknowledged). Exit 2 for an unknown subscriber.

                EXAMPLES:
                  ioasid events resync iommu-agent
                  ioasid --json events resync iommu-agent > snapshot.json
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument

        func run() throws {
            try Output.run(global) {
                let store = try global.openStore()
                let snapshot = try global.operation("resync", ["name": "\(Names.escaped(subscriber.name))"]) { () throws(IOASIDError) in
                    try store.resync(subscriber.name)
                }
                struct View: Encodable {
                    let name: String
                    let store: String
                    let epoch: UInt32
                    let sequence: UInt64
                    let sets: [SetView]
                    let ids: [IDView]
                }
                let view = View(
                    name: subscriber.name, store: snapshot.store, epoch: snapshot.epoch, sequence: snapshot.sequence,
                    sets: snapshot.sets.map(SetView.init), ids: snapshot.ids.map { IDView($0) }
                )
                var lines = [
                    "resynchronised \(Names.escaped(subscriber.name)): continue after event \(snapshot.sequence) (store \(snapshot.store), epoch \(snapshot.epoch))",
                    "sets:",
                ]
                lines += SetTable.render(snapshot.sets, indent: "  ")
                lines.append("ids:")
                for id in view.ids {
                    var line = "  \(id.id) set \(id.set) \(id.state == "freePending" ? "free-pending" : id.state)"
                    if let guest = id.guest { line += " guest \(guest)" }
                    if let data = id.data { line += " data \(data)" }
                    lines.append(line)
                }
                try Output(global).emit(view, text: lines.joined(separator: "\n"))
            }
        }
    }

    /// `ioasid events consume NAME [--batch N] [--once] -- CMD ARGS…`.
    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "consume",
            abstract: "Run a command once per batch of events (JSON Lines on its stdin); acknowledge the batch only when it exits 0.",
            discussion: """
                The safe way to consume events from a script: CMD gets up to --batch events as JSON Lines \
                (the objects of `events tail`) on standard input, and its standard output and error are \
                ioasid's. When CMD exits 0 the batch is acknowledged through its last sequence; when it \
                fails or is killed, nothing is acknowledged and the same events are delivered again after a \
                backoff (100 ms, doubling up to --max-backoff). Make CMD idempotent: a batch may be \
                delivered twice (drop duplicates by store, epoch and sequence). SIGTERM or SIGINT stops \
                cleanly: the signal is passed to a running CMD, its batch is acknowledged only if it still \
                exits 0, and consume exits 0. With --once, consume exits once nothing is pending. A lapsed \
                subscriber stops it (subscriberLapsed, exit 1); a CMD that is no executable (on PATH) is \
                a usage error (exit 64). On exit it prints how much it consumed.

                EXAMPLES:
                  ioasid events consume iommu-agent -- ./teardown-pasids --verbose
                  ioasid events consume audit --batch 1000 -- sh -c 'cat >> events.jsonl'
                  ioasid events consume audit --once -- jq -c 'select(.kind == "FREE")'
                """
        )

        @OptionGroup var global: GlobalOptions
        @OptionGroup var subscriber: SubscriberArgument
        @Option(name: .customLong("batch"), help: ArgumentHelp("At most this many events per run of CMD.", valueName: "n"))
        var batchSize: Int = 100
        @Flag(help: "Exit once no event is pending (after handling every pending one).")
        var once = false
        @Option(help: ArgumentHelp("Poll interval in milliseconds for new events.", valueName: "ms"))
        var poll: Int = 100
        @Option(
            name: .customLong("max-backoff"),
            help: ArgumentHelp("The longest wait before delivering a failed batch again.", valueName: "duration"),
            transform: Durations.parse
        )
        var maxBackoff: Duration = .seconds(30)
        @Argument(parsing: .postTerminator, help: ArgumentHelp("The command (after --) and its arguments.", valueName: "command"))
        var command: [String] = []

        func validate() throws {
            guard !command.isEmpty else { throw ValidationError("give the command to run after --: ioasid events consume NAME -- CMD ARGS…") }
            guard batchSize >= 1 else { throw ValidationError("--batch must be at least 1") }
            guard poll > 0 else { throw ValidationError("--poll must be positive") }
        }

        func run() async throws {
            try await Output.runAsync(global) {
                let name = subscriber.name
                try ChildCommand.checkRunnable(command[0])
                let store = try global.openStore()
                _ = try store.subscriber(name)
                let stopper = ConsumeStopper()
                defer { stopper.restore() }
                var summary = Summary(name: name, batches: 0, acknowledged: 0, failures: 0, acknowledgedThrough: try store.subscriber(name).acknowledgedThrough)
                var backoff = Duration.milliseconds(100)
                while !stopper.stopping {
                    let batch = try store.pendingEvents(for: name, limit: batchSize)
                    guard let last = batch.last else {
                        if once { break }
                        await stopper.sleep(.milliseconds(poll))
                        continue
                    }
                    let lines = batch.map { Output.encode(EventView($0)) }.joined(separator: "\n") + "\n"
                    let outcome = try ChildCommand.run(command, input: Array(lines.utf8), stopper: stopper)
                    if outcome.succeeded {
                        try global.operation("ack", ["name": "\(Names.escaped(name))", "through": "\(last.sequence)"]) { () throws(IOASIDError) in
                            try store.acknowledge(name, through: last.sequence)
                        }
                        summary.batches += 1
                        summary.acknowledged += batch.count
                        summary.acknowledgedThrough = last.sequence
                        backoff = .milliseconds(100)
                        continue
                    }
                    summary.failures += 1
                    if stopper.stopping { break }
                    Output.standardError(
                        "ioasid: consume: \(Names.escaped(command[0])) \(outcome.description); events \(batch[0].sequence)…\(last.sequence) "
                            + "will be delivered again in \(Durations.text(milliseconds: Durations.milliseconds(backoff)))\n"
                    )
                    await stopper.sleep(backoff)
                    backoff = min(backoff * 2, maxBackoff)
                }
                try Output(global).emit(
                    summary,
                    text: "consumed \(plural(summary.acknowledged, "event")) in \(plural(summary.batches, "batch", "batches"))"
                        + (summary.failures > 0 ? " (\(plural(summary.failures, "failed run")) delivered again)" : "")
                        + "; \(Names.escaped(name)) acknowledged through \(summary.acknowledgedThrough)"
                )
            }
        }

        struct Summary: Encodable {
            let name: String
            var batches: Int
            var acknowledged: Int
            var failures: Int
            var acknowledgedThrough: UInt64
        }
    }
}
