import ArgumentParser
import IOASIDStore
import Logging

/// Options every command accepts, before or after the subcommand.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The store directory (default: $IOASID_STORE, else ./ioasid-store).", valueName: "dir"),
        completion: .directory
    )
    var store: String?

    @Option(
        name: .long,
        help: ArgumentHelp("Send the command to `ioasid serve` on this Unix socket instead of opening the store (default: $IOASID_SOCKET).", valueName: "path"),
        completion: .file()
    )
    var socket: String?

    @Flag(name: .long, help: "Print one JSON object instead of text; errors as JSON on stderr (docs/cli-json.md).")
    var json = false

    @Flag(name: .long, help: "Log each operation and commit to stderr (debug level).")
    var verbose = false

    func validate() throws {
        if let store, store.isEmpty { throw ValidationError("--store must not be empty") }
    }

    /// What these options come to: the store, the output form and the log.
    var invocation: Invocation { Invocation(store: store, json: json, verbose: verbose) }

    /// The store path after defaults (an empty `$IOASID_STORE` counts as unset).
    var storePath: String { invocation.storePath }

    /// The logger `--verbose` turns on (debug level, standard error); silent otherwise.
    var logger: Logger { invocation.logger }

    /// Store options for this invocation.
    func storeOptions(creation: IOASIDStore.Creation = .openExisting) -> IOASIDStore.Options {
        invocation.storeOptions(creation: creation)
    }

    /// Opens the existing store to change it.
    func openStore() throws(IOASIDError) -> IOASIDStore { try invocation.openStore() }

    /// Opens the existing store read-only: nothing is written (not even a
    /// migration), so it works on read-only media and beside a long write.
    func openStoreForReading() throws(IOASIDError) -> IOASIDStore { try invocation.openStoreForReading() }

    /// Runs one store operation that commits (or reads), logging it and, at
    /// debug level, its commit and how long it took.
    func operation<R>(
        _ name: String, _ metadata: Logger.Metadata = [:], commits: Bool = true,
        _ body: () throws(IOASIDError) -> R
    ) throws(IOASIDError) -> R {
        let log = logger
        log.debug("operation \(name)", metadata: metadata)
        let started = ContinuousClock.now
        do {
            let result = try body()
            if commits {
                log.debug("commit \(name): durable", metadata: ["elapsed": "\(Self.milliseconds(since: started)) ms"])
            }
            return result
        } catch {
            log.debug("\(name) failed, nothing committed: \(error.code.name)", metadata: ["elapsed": "\(Self.milliseconds(since: started)) ms"])
            throw error
        }
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> String {
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return Text.fixed(ms, places: 2)
    }
}

/// The global options as plain values: what ``GlobalOptions`` parses to, and what
/// a quick lookup (``QuickLookup``), which argument-parser does not parse, starts from.
/// The store path, the logger and the opening of the store are decided here only.
struct Invocation {
    /// `--store`, if given.
    var store: String?
    /// `--json`.
    var json = false
    /// `--verbose`.
    var verbose = false

    /// The store path after defaults (an empty `$IOASID_STORE` counts as unset).
    var storePath: String {
        store ?? EnvironmentVariables.nonEmpty("IOASID_STORE") ?? "./ioasid-store"
    }

    /// The logger `--verbose` turns on (debug level, standard error); silent otherwise.
    var logger: Logger {
        guard verbose else { return Logger(label: "ioasid", factory: { _ in SwiftLogNoOpLogHandler() }) }
        var logger = Logger(label: "ioasid") { EscapingLogHandler(StreamLogHandler.standardError(label: $0)) }
        logger.logLevel = .debug
        return logger
    }

    /// Store options for this invocation.
    func storeOptions(creation: IOASIDStore.Creation = .openExisting) -> IOASIDStore.Options {
        var options = IOASIDStore.Options()
        options.creation = creation
        options.logger = logger
        return options
    }

    /// Opens the existing store to change it.
    func openStore() throws(IOASIDError) -> IOASIDStore {
        if let session = CommandSession.current { return session.store }
        logger.debug("open", metadata: ["store": "\(storePath)", "mode": "read-write"])
        return try IOASIDStore(path: storePath, options: storeOptions())
    }

    /// Opens the existing store read-only: nothing is written (not even a
    /// migration), so it works on read-only media and beside a long write.
    func openStoreForReading() throws(IOASIDError) -> IOASIDStore {
        if let session = CommandSession.current { return session.store }
        var options = storeOptions()
        options.readOnly = true
        logger.debug("open", metadata: ["store": "\(storePath)", "mode": "read-only"])
        return try IOASIDStore(path: storePath, options: options)
    }
}

/// `--set SID`: the set a command acts in (shared by every "ID in a set" command).
struct SetOption: ParsableArguments {
    @Option(help: ArgumentHelp("The set that owns the ID.", valueName: "sid"), completion: Completions.setIDs)
    var set: UInt32

    var setID: SetID { SetID(set) }
}

/// `ID --set SID`: one ID and the set that owns it.
struct IDInSet: ParsableArguments {
    @Argument(help: ArgumentHelp("The ID.", valueName: "id"))
    var id: UInt32

    @OptionGroup var owner: SetOption

    var ioasid: IOASID { IOASID(id) }
    var set: SetID { owner.setID }
}

/// A log handler that shows control characters in messages and metadata as escapes
/// (``Names/escaped(_:)``) before `inner` writes them: a path, token or file name in a
/// `--verbose` line cannot move a terminal's cursor, rewrite its title or forge a line.
struct EscapingLogHandler<Inner: LogHandler>: LogHandler {
    private var inner: Inner

    init(_ inner: Inner) { self.inner = inner }

    var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = Self.escaped(newValue) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: Names.escaped(key)] = newValue.map(Self.escaped) }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(Names.escaped(event.message.description))"
        event.metadata = event.metadata.map(Self.escaped)
        inner.log(event: event)
    }

    private static func escaped(_ metadata: Logger.Metadata) -> Logger.Metadata {
        Dictionary(metadata.map { (Names.escaped($0.key), escaped($0.value)) }, uniquingKeysWith: { $1 })
    }

    private static func escaped(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        .string(Names.escaped(value.description))
    }
}
