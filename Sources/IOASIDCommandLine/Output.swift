import ArgumentParser
import Foundation
import IOASIDStore
import LMDB

#if canImport(Glibc)
import Glibc
#endif

/// Exit codes, as documented in `ioasid --help` and the README.
enum ExitStatus {
    static let refused: Int32 = 1
    static let notFound: Int32 = 2
    static let storeUnusable: Int32 = 3
    static let usage: Int32 = 64

    static func code(for error: IOASIDError) -> Int32 {
        switch error.category {
        case .refused: refused
        case .notFound: notFound
        case .storeUnusable: storeUnusable
        case .invalidInput: usage
        }
    }
}

/// Prints results and errors in the form the global options ask for.
struct Output {
    let json: Bool

    init(_ options: GlobalOptions) { json = options.json }

    /// Whether standard output is a terminal (for bars and progress).
    static var isTerminal: Bool { isatty(STDOUT_FILENO) != 0 }

    /// Prints `value` as JSON, or `text` in plain mode, on standard output.
    ///
    /// - Throws: ``IOASIDError/Code/storageFailure`` when standard output cannot
    ///   be written (a full disk, a reader that went away): a command whose
    ///   output was lost must not exit 0.
    func emit<T: Encodable>(_ value: T, text: @autoclosure () -> String) throws(IOASIDError) {
        try Self.standardOutput(json ? Self.encode(value) : text())
    }

    /// Writes `text` and a newline to standard output, reporting a failed write.
    static func standardOutput(_ text: String) throws(IOASIDError) {
        try standardOutput(bytes: Array((text + "\n").utf8))
    }

    /// Writes bytes to standard output, reporting a failed write.
    static func standardOutput(bytes: [UInt8]) throws(IOASIDError) {
        do { try SystemFile.standardOutput.writeAll(bytes) } catch {
            throw IOASIDError.fileFailure("cannot write to standard output", error)
        }
    }

    /// Writes `text` to standard error; a failure there has nowhere to be reported.
    static func standardError(_ text: String) {
        try? SystemFile.standardError.writeAll(Array(text.utf8))
    }

    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// Runs `body`; an ``IOASIDError`` is printed (JSON on stderr with `--json`)
    /// and turned into its documented exit code.
    static func run(_ options: GlobalOptions, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as IOASIDError {
            report(error, json: options.json)
            throw ExitCode(ExitStatus.code(for: error))
        }
    }

    /// ``run(_:_:)`` for async commands.
    static func runAsync(_ options: GlobalOptions, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as IOASIDError {
            report(error, json: options.json)
            throw ExitCode(ExitStatus.code(for: error))
        }
    }

    static func report(_ error: IOASIDError, json: Bool) {
        let text: String
        let hint = Advice.hint(for: error)
        if json {
            struct Body: Encodable {
                struct Inner: Encodable { let code: String; let message: String; let cause: String?; let hint: String? }
                let error: Inner
            }
            text = encode(Body(error: .init(code: error.code.name, message: error.message, cause: error.cause.map { "\($0)" }, hint: hint)))
        } else {
            var lines = "ioasid: error: \(error.message) (\(error.code.name))"
            if let cause = error.cause { lines += "\nioasid: cause: \(cause)" }
            if let hint { lines += "\nioasid: hint: \(hint)" }
            text = lines
        }
        standardError(text + "\n")
    }
}

/// What an operator can do about an error: the CLI's advice, kept out of the library's messages.
enum Advice {
    static func hint(for error: IOASIDError) -> String? {
        switch error.code {
        case .notInitialized: "create a store with `ioasid init` (or pass --store / set $IOASID_STORE to an existing one)"
        case .newerSchema: "this store was written by a newer ioasid; upgrade the tool"
        case .corruptStore: "run `ioasid verify` for details; restore the last good backup, or salvage what still reads with mdb_dump/mdb_load"
        case .readOnly: "open the store from a writable location, or as a user who may write it"
        case .storageFailure: "check free disk space and the system log"
        case .setFrozen: "finish the migration with `ioasid migrate complete SID` or undo it with `ioasid migrate abort SID`"
        case .internalError: "this is a bug in ioasid; nothing was changed, please report it"
        default: nil
        }
    }
}

/// Hex encoding for private data on the command line.
enum Hex {
    static func encode(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func decode(_ text: String) -> [UInt8]? {
        var digits = Substring(text)
        if digits.hasPrefix("0x") { digits = digits.dropFirst(2) }
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            guard let byte = UInt8(digits[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}

/// The JSON and text form of an ID record.
struct IDView: Encodable {
    let id: UInt32
    let set: UInt32
    let state: String
    let guest: UInt32?
    let data: String

    init(_ info: IDInfo) {
        id = info.id.rawValue
        set = info.set.rawValue
        state = info.state.rawValue
        guest = info.guest
        data = Hex.encode(info.data)
    }

    var text: String {
        var lines = ["id: \(id)", "set: \(set)", "state: \(state)"]
        if let guest { lines.append("guest: \(guest)") }
        lines.append("data: \(data.isEmpty ? "(none)" : data)")
        return lines.joined(separator: "\n")
    }
}

/// The JSON and text form of a set.
struct SetView: Encodable {
    let id: UInt32
    let token: String
    let quota: UInt32
    let allocated: UInt32
    let freePending: UInt32
    let system: Bool
    let frozen: Bool
    let destroyPending: Bool

    init(_ info: SetInfo) {
        id = info.id.rawValue
        token = info.token
        quota = info.quota
        allocated = info.allocated
        freePending = info.freePending
        system = info.isSystem
        frozen = info.isFrozen
        destroyPending = info.isDestroyPending
    }

    var text: String {
        var flags: [String] = []
        if system { flags.append("system") }
        if frozen { flags.append("frozen") }
        if destroyPending { flags.append("destroy-pending") }
        return """
            set: \(id)
            token: \(token)
            quota: \(quota)
            allocated: \(allocated)
            free-pending: \(freePending)
            flags: \(flags.isEmpty ? "-" : flags.joined(separator: ","))
            """
    }
}

/// A usage bar such as `[#####.....]`.
func bar(_ used: UInt64, of total: UInt64, width: Int = 24) -> String {
    let filled = total == 0 ? 0 : Int((Double(used) / Double(total) * Double(width)).rounded(.up))
    let clamped = min(width, filled)
    return "[" + String(repeating: "█", count: clamped) + String(repeating: "·", count: width - clamped) + "]"
}
