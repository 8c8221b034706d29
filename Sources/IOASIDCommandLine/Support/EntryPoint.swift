import ArgumentParser
import Foundation
import IOASIDStore
import Logging
import LMDB

extension IOASIDCommand {
    /// Parses `arguments` (without the program name), runs the command and
    /// returns its exit status. Every failure, argument-parser's own usage
    /// errors included, is printed in the tool's one style — `ioasid: error:
    /// MESSAGE (code)`, or `{"error":{"code","message"}}` on stderr with `--json`
    /// — with its documented exit status.
    public static func main(arguments: [String]) async -> Int32 {
        if CommandSession.current == nil {
            let (socket, rest) = ServiceClientMode.socket(in: arguments)
            if let socket {
                let json = wantsJSON(rest)
                guard !socket.isEmpty else {
                    Output.report(code: "usage", message: "--socket must not be empty", json: json)
                    return ExitStatus.usage
                }
                // `ioasid --version` and bare `ioasid` need no store.
                guard let command = ServiceClientMode.command(in: rest) else { return await runHere(rest) }
                // `serve --socket PATH` names where the service listens, not a service to call. Given
                // first, argument-parser reads it as serve's wherever it stood (`$IOASID_SOCKET` is not
                // serve's: the service listens at STORE/ioasid.sock unless told otherwise).
                if command == "serve" { return await runHere(rest.count < arguments.count ? ["--socket", socket] + rest : rest) }
                if command == "help" || clientSideCommand(rest) != nil { return await runLocally(rest, socket: socket, json: json) }
                return await ServiceClientMode.run(socket: socket, arguments: rest, json: json)
            }
        }
        return await runHere(arguments)
    }

    /// A command that works on the client's files, run in this process even with
    /// `--socket`: on the store the service serves unless `--store` names one.
    private static func runLocally(_ arguments: [String], socket: String, json: Bool) async -> Int32 {
        let command = ServiceClientMode.command(in: arguments)
        if ["demo", "help", "serve", "init"].contains(command) || ServiceClientMode.namesStore(arguments) {
            return await runHere(arguments)
        }
        do {
            let path = try ServiceClientMode.storePath(socket: socket)
            return await runHere(["--store", path] + arguments)
        } catch {
            Output.report(error, hint: ServiceClientMode.unreachableHint, json: json)
            return ExitStatus.code(for: error)
        }
    }

    private static func runHere(_ arguments: [String]) async -> Int32 {
        let json = wantsJSON(arguments)
        switch parse(arguments, json: json) {
        case .finished(let status):
            return status
        case .command(var command):
            guard var asyncCommand = command as? any AsyncParsableCommand else { return run(&command, json: json) }
            return await run(&asyncCommand, json: json)
        }
    }

    /// ``mainBlocking(arguments:)`` of the process's own arguments: one that is not UTF-8
    /// text is a usage error (exit 64), never read with U+FFFD in place of its bytes.
    public static func mainBlocking() -> Int32 {
        switch ProcessArguments.decoded() {
        case .success(let arguments):
            return mainBlocking(arguments: arguments)
        case .failure(let bad):
            Output.report(
                code: "usage", message: bad.message, hint: "paths, tokens and names must be UTF-8",
                json: wantsJSON(Array(CommandLine.arguments.dropFirst()))
            )
            return ExitStatus.usage
        }
    }

    /// ``main(arguments:)`` for a process's `main`, which calls it outside Swift
    /// concurrency: a synchronous command (most of them: `find-set`, `alloc`,
    /// `status`…) parses and runs on the calling thread, and the concurrency
    /// runtime, with its threads, starts only for an async command or the
    /// service client — a shorter start for the one-shot processes scripts run.
    /// The plainest `find-set ID` and `find ID [--set SID]` skip argument-parser
    /// too (``QuickLookup``).
    public static func mainBlocking(arguments: [String]) -> Int32 {
        if ServiceClientMode.socket(in: arguments).socket != nil {
            return blocking { await main(arguments: arguments) }
        }
        if let quick = QuickLookup(arguments) {
            do {
                try quick.run()
                return ExitStatus.success
            } catch {
                return status(for: error, json: quick.invocation.json)
            }
        }
        let json = wantsJSON(arguments)
        switch parse(arguments, json: json) {
        case .finished(let status):
            return status
        case .command(var command):
            guard let asyncCommand = command as? any AsyncParsableCommand else { return run(&command, json: json) }
            // Handed to the task that runs it; nothing else touches it meanwhile.
            nonisolated(unsafe) var running = asyncCommand
            return blocking { await run(&running, json: json) }
        }
    }

    /// What parsing left to do: nothing (help, or a usage error, already printed), or a command to run.
    private enum Parsed {
        case finished(Int32)
        case command(any ParsableCommand)
    }

    private static func parse(_ arguments: [String], json: Bool) -> Parsed {
        if let unknown = unknownHelpTopic(arguments) {
            Output.report(
                code: "usage", message: "no command '\(unknown.joined(separator: " "))'",
                hint: "`ioasid help` lists the commands", json: json
            )
            return .finished(ExitStatus.usage)
        }
        do { return .command(try parseAsRoot(arguments)) } catch { return .finished(status(for: error, json: json)) }
    }

    private static func run(_ command: inout any ParsableCommand, json: Bool) -> Int32 {
        do {
            try command.run()
            return ExitStatus.success
        } catch {
            return status(for: error, json: json)
        }
    }

    private static func run(_ command: inout any AsyncParsableCommand, json: Bool) async -> Int32 {
        do {
            try await command.run()
            return ExitStatus.success
        } catch {
            return status(for: error, json: json)
        }
    }

    /// Runs `body` in a task and blocks the calling thread (never one of the
    /// concurrency pool's) until it returns.
    private static func blocking(_ body: @escaping @Sendable () async -> Int32) -> Int32 {
        let result = Locked<Int32?>(nil)
        Task { @Sendable in
            let status = await body()
            result.withLockSignalling { $0 = status }
        }
        return result.withLock(waitingUntil: { $0 != nil }) { $0 ?? ExitStatus.storeUnusable }
    }

    /// Reports what a command threw in the tool's one style and returns its exit status
    /// (help and other clean exits print their text and return 0).
    private static func status(for error: any Error, json: Bool) -> Int32 {
        switch error {
        case let exit as ExitCode:
            // The command printed its own output or error already.
            return exit.rawValue
        case let error as IOASIDError:
            Output.report(error, json: json)
            return ExitStatus.code(for: error)
        default:
            let status = exitCode(for: error).rawValue
            if status == 0 {
                // Help, --generate-completion-script, completions, --experimental-dump-help.
                let text = fullMessage(for: error)
                do { try Output.standardOutput(text) } catch {
                    Output.report(error, json: json)
                    return ExitStatus.code(for: error)
                }
                return ExitStatus.success
            }
            let message = Self.message(for: error)
            Output.report(code: "usage", message: Self.lowercasingFirst(message), hint: Self.usageHint(fullMessage(for: error)), json: json)
            return ExitStatus.usage
        }
    }

    /// Whether `--json` is among the options (before a `--`), so that even a
    /// usage error is reported as JSON.
    static func wantsJSON(_ arguments: [String]) -> Bool {
        for argument in arguments {
            if argument == "--" { return false }
            if argument == "--json" { return true }
        }
        return false
    }

    /// For `ioasid help X Y`: the words that name no command, or `nil` when the
    /// arguments are not a help request or name a real command.
    static func unknownHelpTopic(_ arguments: [String]) -> [String]? {
        var words: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--store" {
                index += 2
                continue
            }
            if !argument.hasPrefix("-") { words.append(argument) }
            index += 1
        }
        guard words.first == "help" else { return nil }
        var command: any ParsableCommand.Type = IOASIDCommand.self
        for (position, word) in words.dropFirst().enumerated() {
            guard let next = command.configuration.subcommands.first(where: { $0._commandName == word }) else {
                return Array(words.dropFirst().prefix(position + 1))
            }
            command = next
        }
        return nil
    }

    /// `see 'ioasid alloc --help'`, from argument-parser's full message.
    static func usageHint(_ full: String) -> String? {
        for line in full.split(separator: "\n") {
            let trimmed = Text.trimmingBlanks(line)
            if trimmed.hasPrefix("See '") { return "s" + trimmed.dropFirst() }
        }
        return nil
    }

    static func lowercasingFirst(_ text: String) -> String {
        guard let first = text.first, first.isUppercase, text.dropFirst().first?.isLowercase ?? false else { return text }
        return first.lowercased() + text.dropFirst()
    }
}
