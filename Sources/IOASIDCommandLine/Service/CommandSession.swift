import ArgumentParser
public import IOASIDStore

/// A command run on behalf of a client of `ioasid serve`: the same command
/// implementation as in the `ioasid` process, with its output captured and the
/// service's store.
///
/// While a session is current (``IOASIDCommand/run(arguments:in:)``):
/// - standard output and standard error go to the session's sinks, in order;
/// - the store is the service's open ``IOASIDStore`` (opened with synchronous
///   writes going through its group-commit writer), whatever `--store` says;
/// - standard input (for `batch`) is the bytes the client sent;
/// - terminal questions (is stdout a terminal, how wide) get the client's answers.
public struct CommandSession: Sendable {
    /// What the client's terminal is like.
    public struct TerminalInfo: Sendable, Codable {
        /// Whether the client's standard output is a terminal.
        public var standardOutput: Bool
        /// Whether the client's standard error is a terminal.
        public var standardError: Bool
        /// The client's terminal width in columns.
        public var width: Int
        /// Whether only plain ASCII may be drawn (`TERM=dumb` or unset, or `NO_COLOR`).
        public var asciiOnly: Bool

        /// A client's terminal.
        public init(standardOutput: Bool, standardError: Bool, width: Int, asciiOnly: Bool) {
            self.standardOutput = standardOutput
            self.standardError = standardError
            self.width = width
            self.asciiOnly = asciiOnly
        }
    }

    /// The service's store.
    public let store: IOASIDStore
    /// Receives standard output; throws when the client went away (the command then fails as on a closed pipe).
    public let standardOutput: @Sendable ([UInt8]) throws(IOASIDError) -> Void
    /// Receives standard error.
    public let standardError: @Sendable ([UInt8]) -> Void
    /// The client's standard input (empty unless it sent some).
    public let standardInput: [UInt8]
    /// The client's terminal.
    public let terminal: TerminalInfo
    /// Told the stable code of each failure the command reports (`noSuchID`, `usage`…), for
    /// metrics that count failures by code as the service's own endpoints do.
    public let failed: @Sendable (String) -> Void

    /// A session.
    public init(
        store: IOASIDStore,
        standardOutput: @escaping @Sendable ([UInt8]) throws(IOASIDError) -> Void,
        standardError: @escaping @Sendable ([UInt8]) -> Void,
        standardInput: [UInt8] = [],
        terminal: TerminalInfo,
        failed: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.store = store
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.standardInput = standardInput
        self.terminal = terminal
        self.failed = failed
    }

    /// The session of the running command, if it runs for a client of the service.
    @TaskLocal static var current: CommandSession?

}

/// A command that never runs in the service: it reads or writes files named on
/// the client's side (`backup`, `restore`, `dump`, `migrate …`), runs a program
/// (`events consume`), creates a store (`init`) or uses none (`demo`, `serve`).
/// With `--socket` it runs in the client process, directly on the store; the
/// service refuses it, so a client the service lets in can never make the
/// service's user write a file or run a program of the client's choosing.
///
/// Decided on the parsed command's type, never on the words of the command line.
protocol RunsInClient {}

extension IOASIDCommand.Init: RunsInClient {}
extension IOASIDCommand.Demo: RunsInClient {}
extension IOASIDCommand.Serve: RunsInClient {}
extension IOASIDCommand.Backup: RunsInClient {}
extension IOASIDCommand.Restore: RunsInClient {}
extension IOASIDCommand.Dump: RunsInClient {}
extension IOASIDCommand.Migrate: RunsInClient {}
extension IOASIDCommand.Migrate.Export: RunsInClient {}
extension IOASIDCommand.Migrate.Import: RunsInClient {}
extension IOASIDCommand.Migrate.Validate: RunsInClient {}
extension IOASIDCommand.Migrate.Complete: RunsInClient {}
extension IOASIDCommand.Migrate.Abort: RunsInClient {}
extension IOASIDCommand.Events.Consume: RunsInClient {}

extension IOASIDCommand {
    /// The name of the command `arguments` parse as when it runs in the client
    /// (``RunsInClient``); `nil` for any other command, or when they do not parse
    /// (the usage error is reported wherever they run).
    static func clientSideCommand(_ arguments: [String]) -> String? {
        guard let command = try? parseAsRoot(arguments), command is any RunsInClient else { return nil }
        return type(of: command).configuration.commandName ?? "this command"
    }
}

extension IOASIDCommand {
    /// Runs one command line for a client of the service: parses `arguments`
    /// exactly as `ioasid` does, runs the command against `session`'s store and
    /// returns the exit status the `ioasid` process would have had.
    ///
    /// Synchronous store writes block the calling thread until their group
    /// commit is durable: run this on threads that may block (a task executor of
    /// its own), never on an event loop.
    public static func run(arguments: [String], in session: CommandSession) async -> Int32 {
        await CommandSession.$current.withValue(session) {
            if let command = clientSideCommand(arguments) {
                Output.report(
                    code: "usage", message: "'\(Names.escaped(command))' works on the client's own files or programs and runs in the client, not in the service",
                    hint: "run `ioasid \(Names.escaped(command))` with --store on the store's directory", json: wantsJSON(arguments)
                )
                return ExitStatus.usage
            }
            return await main(arguments: arguments)
        }
    }
}

/// The CLI's JSON documents (docs/cli-json.md), for the service's own endpoints:
/// the same spelling as `ioasid --json`.
public enum CommandLineJSON {
    /// One event, as a line of `ioasid events tail`.
    public static func event(_ event: Event) -> String { Output.encode(EventView(event)) }
    /// A subscriber, as `ioasid --json events ack` prints it.
    public static func subscriber(_ info: SubscriberInfo) -> String { Output.encode(SubscriberView(info)) }
    /// An ID's state: `allocated`, `freePending` or `free`.
    public static func state(_ state: IDState?) -> String { IDStateName.json(state) }
    /// Any value, keys sorted, on one line.
    public static func encode<T: Encodable>(_ value: T) -> String { Output.encode(value) }
    /// The error document `{"error":{"code","message"[,"cause"][,"hint"]}}` of an error.
    public static func error(_ error: IOASIDError) -> String {
        Output.encode(Output.ErrorDocument(error: .init(
            code: error.code.name, message: error.message, cause: error.cause.map { "\($0)" }, hint: Advice.hint(for: error)
        )))
    }
    /// An error document with a code of the service's own (`usage`, `accessDenied`, …).
    public static func error(code: String, message: String) -> String {
        Output.encode(Output.ErrorDocument(error: .init(code: code, message: message, cause: nil, hint: nil)))
    }
    /// The exit status `ioasid` gives `error`.
    public static func exitStatus(for error: IOASIDError) -> Int32 { ExitStatus.code(for: error) }
}
