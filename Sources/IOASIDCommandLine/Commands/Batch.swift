import ArgumentParser
import Foundation
import IOASIDMigrations
import IOASIDStore
import Logging
import LMDB

extension IOASIDCommand {
    /// `ioasid batch < FILE`: many operations, one commit, all or nothing.
    struct Batch: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "batch",
            abstract: "Run operations read from standard input in one durable commit, all or nothing.",
            discussion: """
                One operation per line, written as the command would be without `ioasid` and global \
                options, ending in LF or CRLF; blank lines and lines starting with # are skipped; words may be quoted with \
                '...' or "...". Operations: alloc, free, attach, detach, data, hold, release, set create, \
                set adjust. Every line is parsed before anything runs (a bad line is a usage error, exit \
                64, naming it); then all run in one write transaction. If any is refused, nothing is \
                committed and the error names the line. Prints one result per operation, in order.

                EXAMPLES:
                  printf 'alloc --set 2 --guest 101\\nalloc --set 2 --guest 102\\n' | ioasid batch
                  ioasid batch < teardown.txt     # free 7 --set 2 / release 8 --set 2 --holder kvm / …
                """
        )

        @OptionGroup var global: GlobalOptions

        /// Longest input accepted (16 MiB) and longest line (64 KiB).
        static let maximumInput = 16 << 20
        static let maximumLine = 65_536

        func run() throws {
            try Output.run(global) {
                let input = try Self.readStandardInput()
                let steps = try Self.parse(input)
                guard !steps.isEmpty else { throw IOASIDError(.invalidArgument, "standard input holds no operation") }
                let store = try global.openStore()
                let logger = global.logger
                var results = try global.operation("batch", ["operations": "\(steps.count)"]) { () throws(IOASIDError) -> [BatchResult] in
                    do {
                        return try store.write { tx in
                            var results: [BatchResult] = []
                            for (line, words, step) in steps {
                                logger.debug("operation \(words.joined(separator: " "))", metadata: ["line": "\(line)"])
                                do {
                                    var result = try step.apply(tx)
                                    result.line = line
                                    results.append(result)
                                } catch let error as IOASIDError {
                                    throw IOASIDError(
                                        error.code, "line \(line) (\(Names.escaped(words.joined(separator: " ")))): \(error.message); nothing was committed",
                                        cause: error.cause
                                    )
                                }
                            }
                            return results
                        }
                    } catch let error as IOASIDError { throw error } catch {
                        throw IOASIDError(.internalError, "unexpected error: \(error)")
                    }
                }
                // The state each freed or released ID ended in, after the commit.
                for index in results.indices where results[index].op == "free" || results[index].op == "release" {
                    if let id = results[index].id { results[index].state = IDStateName.json((try? store.find(IOASID(id)))?.state) }
                }
                struct View: Encodable { let operations: Int; let results: [BatchResult] }
                try Output(global).emit(
                    View(operations: results.count, results: results), text: results.map(\.text).joined(separator: "\n"),
                    committed: "ran \(plural(results.count, "operation")) (\(listed(results.map(\.text))))"
                )
            }
        }

        static func readStandardInput() throws(IOASIDError) -> [UInt8] {
        if let session = CommandSession.current {
            if session.standardInput.count > maximumInput { throw IOASIDError(.invalidArgument, "standard input is longer than \(maximumInput) bytes") }
            return session.standardInput
        }
            var bytes: [UInt8] = []
            while true {
                let n: Int
                do { n = try SystemFile.standardInput.read(into: &bytes, upTo: 1 << 20) } catch {
                    throw IOASIDError(.invalidArgument, "cannot read standard input: \(error.message)", cause: error)
                }
                if n == 0 { return bytes }
                if bytes.count > maximumInput { throw IOASIDError(.invalidArgument, "standard input is longer than \(maximumInput) bytes") }
            }
        }

        /// Parses every line; a bad one is a usage error naming it.
        static func parse(_ input: [UInt8]) throws(IOASIDError) -> [(Int, [String], any BatchStep)] {
            guard let text = String(validating: input, as: UTF8.self) else {
                throw IOASIDError(.invalidArgument, "standard input is not UTF-8 text")
            }
            var steps: [(Int, [String], any BatchStep)] = []
            // Lines end at LF, and a CR before it belongs to the line end (CRLF). Splitting the
            // text on the Character "\n" would not split at "\r\n", which is one Character:
            // a comment line would swallow the operation after it.
            for (index, bytes) in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
                let line = Substring(bytes.last == UInt8(ascii: "\r") ? bytes.dropLast() : bytes)
                let number = index + 1
                guard line.utf8.count <= maximumLine else { throw IOASIDError(.invalidArgument, "line \(number) is longer than \(maximumLine) bytes") }
                // A CR inside a line returns a terminal's cursor: what a reader sees is not what runs.
                guard !line.utf8.contains(UInt8(ascii: "\r")) else {
                    throw IOASIDError(.invalidArgument, "line \(number) holds a carriage return (CR) before its end")
                }
                let trimmed = Text.trimmingBlanks(line)
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                let words: [String]
                do { words = try ShellWords.split(trimmed) } catch {
                    throw IOASIDError(.invalidArgument, "line \(number): \(error.message)")
                }
                let parsed: any ParsableCommand
                do { parsed = try BatchLine.parseAsRoot(words) } catch {
                    let message = BatchLine.exitCode(for: error).rawValue == 0 ? "help is not an operation" : BatchLine.message(for: error)
                    throw IOASIDError(.invalidArgument, "line \(number) (\(Names.escaped(trimmed))): \(IOASIDCommand.lowercasingFirst(message))")
                }
                guard let step = parsed as? any BatchStep else {
                    throw IOASIDError(.invalidArgument, "line \(number) (\(Names.escaped(trimmed))): not an operation")
                }
                steps.append((number, words, step))
            }
            return steps
        }
    }
}

/// Splits a line into words: whitespace separates, '…' and "…" quote, \ escapes in "…" and bare words.
enum ShellWords {
    struct Failure: Error { let message: String }

    static func split(_ line: String) throws(Failure) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open {
                    quote = nil
                } else if character == "\\" && open == "\"" {
                    escaped = true
                } else {
                    current.append(character)
                }
                continue
            }
            switch character {
            case " ", "\t":
                if inWord { words.append(current) }
                current = ""
                inWord = false
            case "'", "\"":
                quote = character
                inWord = true
            case "\\":
                escaped = true
                inWord = true
            default:
                current.append(character)
                inWord = true
            }
        }
        if quote != nil { throw Failure(message: "unterminated quote") }
        if escaped { throw Failure(message: "a backslash ends the line") }
        if inWord { words.append(current) }
        return words
    }
}

/// What one operation of a batch did (docs/cli-json.md, `batch`).
struct BatchResult: Encodable {
    var line = 0
    let op: String
    var set: UInt32?
    var id: UInt32?
    var guest: UInt32?
    var detachedGuest: UInt32?
    var data: String?
    var holder: String?
    var new: Bool?
    var state: String?
    var token: String?
    var quota: UInt32?

    init(op: String) { self.op = op }

    var text: String {
        switch op {
        case "alloc": return id.map(String.init) ?? "-"
        case "set create": return set.map(String.init) ?? "-"
        case "free": return "freed \(id ?? 0) (\(state == "freePending" ? "free-pending" : state ?? "free"))"
        case "attach": return "guest \(guest ?? 0) → host \(id ?? 0) in set \(set ?? 0)"
        case "detach": return "\(detachedGuest ?? 0)"
        case "data": return data.map { "\(id ?? 0) now carries \($0)" } ?? "\(id ?? 0) carries no data"
        case "hold": return "\(Names.escaped(holder ?? "")) \(new == true ? "holds" : "already held") \(id ?? 0)"
        case "release": return "\(Names.escaped(holder ?? "")) released \(id ?? 0) (\(state == "freePending" ? "free-pending" : state ?? "free"))"
        case "set adjust": return "set \(set ?? 0) quota \(quota ?? 0)"
        default: return op
        }
    }
}

/// One operation of a batch, applied in the batch's transaction.
protocol BatchStep: ParsableCommand {
    func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult
}

/// The grammar of a batch line (argument-parser does the parsing and validation).
struct BatchLine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        subcommands: [Alloc.self, Free.self, Attach.self, Detach.self, DataStep.self, Hold.self, Release.self, SetGroup.self]
    )

    struct Alloc: BatchStep {
        static let configuration = CommandConfiguration(commandName: "alloc")
        @OptionGroup var owner: SetOption
        @Option var min: UInt32 = 1
        @Option var max: UInt32?
        @Option var data: String?
        @Option var guest: UInt32?

        func validate() throws {
            if min == 0 { throw ValidationError("--min must be at least 1 (ID 0 is reserved)") }
            if let max, min > max { throw ValidationError("--min (\(min)) is greater than --max (\(max))") }
            if let data { _ = try Hex.parseData(data) }
        }

        func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
            var range: ClosedRange<UInt32>?
            if min != 1 || max != nil {
                let upper = try max ?? (tx.capacity() - 1)
                guard min <= upper else { throw IOASIDError(.invalidArgument, "the range \(min)…\(upper) is empty") }
                range = min...upper
            }
            let id = try tx.allocate(in: owner.setID, range: range, data: data.flatMap(Hex.decodeArgument) ?? [], guest: guest)
            var result = BatchResult(op: "alloc")
            result.set = owner.set
            result.id = id.rawValue
            result.guest = guest
            return result
        }
    }

    struct Free: BatchStep {
        static let configuration = CommandConfiguration(commandName: "free")
        @OptionGroup var target: IDInSet

        func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
            _ = try tx.free(target.ioasid, in: target.set)
            var result = BatchResult(op: "free")
            result.set = target.owner.set
            result.id = target.id
            return result
        }
    }

    struct Attach: BatchStep {
        static let configuration = CommandConfiguration(commandName: "attach")
        @OptionGroup var target: IDInSet
        @Option var guest: UInt32

        func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
            try tx.attach(guest: guest, to: target.ioasid, in: target.set)
            var result = BatchResult(op: "attach")
            result.set = target.owner.set
            result.id = target.id
            result.guest = guest
            return result
        }
    }

    struct Detach: BatchStep {
        static let configuration = CommandConfiguration(commandName: "detach")
        @OptionGroup var target: IDInSet

        func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
            let guest = try tx.detach(target.ioasid, in: target.set)
            var result = BatchResult(op: "detach")
            result.set = target.owner.set
            result.id = target.id
            result.detachedGuest = guest
            return result
        }
    }

    struct DataStep: BatchStep {
        static let configuration = CommandConfiguration(commandName: "data")
        @OptionGroup var target: IDInSet
        @Argument var hex: String?
        @Flag var clear = false

        func validate() throws {
            if hex == nil && !clear { throw ValidationError("give HEX or --clear") }
            if hex != nil && clear { throw ValidationError("give HEX or --clear, not both") }
            if let hex { _ = try Hex.parseData(hex) }
        }

        func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
            let bytes = hex.flatMap(Hex.decodeArgument) ?? []
            try tx.setData(bytes, for: target.ioasid, in: target.set)
            var result = BatchResult(op: "data")
            result.set = target.owner.set
            result.id = target.id
            result.data = bytes.isEmpty ? nil : Hex.encode(bytes)
            return result
        }
    }

    struct Hold: BatchStep {
        static let configuration = CommandConfiguration(commandName: "hold")
        @OptionGroup var target: IDInSet
        @Option var holder: String

        func validate() throws {
            do { try Names.check(holder, as: "holder name") } catch { throw ValidationError(error.message) }
        }

        func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
            let new = try tx.retain(target.ioasid, in: target.set, holder: holder)
            var result = BatchResult(op: "hold")
            result.set = target.owner.set
            result.id = target.id
            result.holder = holder
            result.new = new
            return result
        }
    }

    struct Release: BatchStep {
        static let configuration = CommandConfiguration(commandName: "release")
        @OptionGroup var target: IDInSet
        @Option var holder: String

        func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
            try tx.release(target.ioasid, in: target.set, holder: holder)
            var result = BatchResult(op: "release")
            result.set = target.owner.set
            result.id = target.id
            result.holder = holder
            return result
        }
    }

    struct SetGroup: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", subcommands: [Create.self, Adjust.self])

        struct Create: BatchStep {
            static let configuration = CommandConfiguration(commandName: "create")
            @Option var token: String
            @Option var quota: UInt32

            func validate() throws {
                guard quota >= 1 else { throw ValidationError("--quota must be at least 1") }
                do { try Names.check(token, as: "token") } catch { throw ValidationError(error.message) }
            }

            func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
                let set = try tx.createSet(token: token, quota: quota)
                var result = BatchResult(op: "set create")
                result.set = set.rawValue
                result.token = token
                result.quota = quota
                return result
            }
        }

        struct Adjust: BatchStep {
            static let configuration = CommandConfiguration(commandName: "adjust")
            @OptionGroup var target: SetArgument
            @Option var quota: UInt32

            func validate() throws {
                guard quota >= 1 else { throw ValidationError("--quota must be at least 1") }
            }

            func apply(_ tx: borrowing WriteTransaction) throws -> BatchResult {
                try tx.adjustQuota(of: target.setID, to: quota)
                var result = BatchResult(op: "set adjust")
                result.set = target.set
                result.quota = quota
                return result
            }
        }
    }
}
