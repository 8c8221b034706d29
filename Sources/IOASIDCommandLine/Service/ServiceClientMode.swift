import Foundation
import IOASIDClient
import IOASIDStore
import LMDB

#if canImport(Glibc)
import Glibc
#endif

/// `ioasid --socket PATH …` (or `$IOASID_SOCKET`): the command runs in the
/// service, through `POST /cli`, which runs the very same command
/// implementation there with the output captured and streamed back (JSON Lines
/// of base64 `stdout`/`stderr` pieces, then the `exit` status). This process
/// prints the pieces as they come and exits with that status, so output and
/// exit codes are those of the command run directly. Commands that work on the
/// client's own files (``RunsInClient``: `backup`, `restore`, `dump`, `migrate …`, `events consume`, …) run here instead.
enum ServiceClientMode {
    /// The socket named by `--socket PATH` / `--socket=PATH` (before `--`), else
    /// a non-empty `$IOASID_SOCKET`; and the arguments without the option.
    static func socket(in arguments: [String]) -> (socket: String?, rest: [String]) {
        var rest: [String] = []
        var socket: String?
        var index = 0
        var passthrough = false
        while index < arguments.count {
            let argument = arguments[index]
            if passthrough {
                rest.append(argument)
            } else if argument == "--" {
                passthrough = true
                rest.append(argument)
            } else if case .value(let value) = ArgumentScan.option("--socket", in: arguments, at: &index) {
                socket = value
            } else {
                rest.append(argument)
            }
            index += 1
        }
        if socket == nil, let environment = EnvironmentVariables.nonEmpty("IOASID_SOCKET") {
            socket = environment
        }
        return (socket, rest)
    }

    /// The subcommand named (the first word that is neither an option nor the value of `--store`).
    static func command(in arguments: [String]) -> String? {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" { return nil }
            if argument == "--store" {
                index += 2
                continue
            }
            if !argument.hasPrefix("-") { return argument }
            index += 1
        }
        return nil
    }

    /// Whether `--store` is given (or `$IOASID_STORE`).
    static func namesStore(_ arguments: [String]) -> Bool {
        if EnvironmentVariables.nonEmpty("IOASID_STORE") != nil { return true }
        for argument in arguments {
            if argument == "--" { return false }
            if argument == "--store" || argument.hasPrefix("--store=") { return true }
        }
        return false
    }

    /// One piece of the `/cli` stream.
    struct Frame: Decodable {
        let stdout: String?
        let stderr: String?
        let exit: Int32?
    }

    /// The body of `POST /cli`.
    struct Request: Encodable {
        let arguments: [String]
        let stdin: String?
        let terminal: CommandSession.TerminalInfo
    }

    /// The store path the service owns (`GET /info`), for commands that run here.
    static func storePath(socket: String) throws(IOASIDError) -> String {
        let response: UnixHTTPClient.Response
        do { response = try UnixHTTPClient(path: socket).send("GET", "/info") } catch {
            throw unreachable(socket, error)
        }
        struct Info: Decodable { let path: String }
        guard response.head.status == 200, let info = try? JSONDecoder().decode(Info.self, from: Data(response.body)) else {
            throw IOASIDError(.storageFailure, "the service at \(socket) did not say which store it serves (HTTP \(response.head.status))")
        }
        // A relative path would name another store from this working directory.
        guard info.path.hasPrefix("/") else {
            throw IOASIDError(.storageFailure, "the service at \(socket) names its store by a relative path (\(info.path)); give this command --store")
        }
        return info.path
    }

    /// The advice for a service that cannot be reached or does not answer.
    static let unreachableHint = "start the service with `ioasid serve`, or drop --socket / unset IOASID_SOCKET to open the store directly"

    static func unreachable(_ socket: String, _ error: ClientError) -> IOASIDError {
        IOASIDError(.storageFailure, "cannot reach the ioasid service at \(socket): \(error.description)")
    }

    /// Runs `arguments` in the service on `socket`; returns the exit status.
    static func run(socket: String, arguments: [String], json: Bool) async -> Int32 {
        var stdin: String?
        if command(in: arguments) == "batch" {
            var bytes: [UInt8] = []
            while true {
                let n: Int
                do { n = try SystemFile.standardInput.read(into: &bytes, upTo: 1 << 20) } catch {
                    Output.report(code: "invalidArgument", message: "cannot read standard input: \(error.message)", json: json)
                    return ExitStatus.usage
                }
                if n == 0 { break }
                if bytes.count > IOASIDCommand.Batch.maximumInput {
                    // As the command says it run here, before sending what the service would refuse.
                    Output.report(code: "invalidArgument", message: "standard input is longer than \(IOASIDCommand.Batch.maximumInput) bytes", json: json)
                    return ExitStatus.usage
                }
            }
            stdin = Data(bytes).base64EncodedString()
        }
        let terminal = CommandSession.TerminalInfo(
            standardOutput: Terminal.isTerminal(STDOUT_FILENO), standardError: Terminal.isTerminal(STDERR_FILENO),
            width: Terminal.width(of: STDOUT_FILENO), asciiOnly: Terminal.asciiOnly
        )
        let body = Array(Output.encode(Request(arguments: arguments, stdin: stdin, terminal: terminal)).utf8)
        var pending: [UInt8] = []
        var status: Int32?
        var failure: IOASIDError?
        let decoder = JSONDecoder()
        let head: UnixHTTPClient.Head
        do {
            head = try UnixHTTPClient(path: socket).stream("POST", "/cli", body: body) { piece in
                pending += piece
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Data(pending[..<newline])
                    pending.removeSubrange(...newline)
                    guard let frame = try? decoder.decode(Frame.self, from: line) else { continue }
                    if let text = frame.stdout, let bytes = Data(base64Encoded: text) {
                        do throws(IOASIDError) { try Output.standardOutput(bytes: Array(bytes)) } catch {
                            failure = error
                            throw error
                        }
                    }
                    if let text = frame.stderr, let bytes = Data(base64Encoded: text) {
                        try? SystemFile.standardError.writeAll(Array(bytes))
                    }
                    if let exit = frame.exit { status = exit }
                }
            }
        } catch {
            if let failure {
                Output.report(failure, json: json)
                return ExitStatus.code(for: failure)
            }
            Output.report(unreachable(socket, error), hint: unreachableHint, json: json)
            return ExitStatus.storeUnusable
        }
        if head.status != 200 {
            // The service refused the request itself (a peer it does not allow, a body too large).
            struct ErrorDocument: Decodable { struct Body: Decodable { let code: String; let message: String }; let error: Body }
            let document = try? decoder.decode(ErrorDocument.self, from: Data(pending))
            Output.report(
                code: document?.error.code ?? "serviceError",
                message: document?.error.message ?? "the service at \(socket) answered HTTP \(head.status)", json: json
            )
            return head.status == 400 ? ExitStatus.usage : ExitStatus.storeUnusable
        }
        guard let status else {
            Output.report(code: "storageFailure", message: "the ioasid service at \(socket) closed the connection before the command finished", json: json)
            return ExitStatus.storeUnusable
        }
        return status
    }
}
