import ArgumentParser
import Foundation
import IOASIDMigrations
import IOASIDStore
import Logging
import LMDB

#if canImport(Glibc)
import Glibc
#endif

/// Exit codes, as documented in the root help, the README and docs/cli-json.md.
enum ExitStatus {
    static let success: Int32 = 0
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

/// Every byte the tool prints goes through here: results on standard output
/// (a failed write is an error, exit 3, never a crash or a silent exit 0),
/// errors and progress on standard error.
struct Output {
    let json: Bool

    init(_ options: GlobalOptions) { json = options.json }
    init(_ invocation: Invocation) { json = invocation.json }

    /// Prints `value` as one JSON object, or `text` in plain mode, on standard output.
    ///
    /// - Throws: ``IOASIDError/Code-swift.struct/storageFailure`` when standard output cannot
    ///   be written (a full disk, a reader that went away): a command whose
    ///   output was lost must not exit 0.
    func emit<T: Encodable>(_ value: T, text: @autoclosure () -> String) throws(IOASIDError) {
        try Self.standardOutput(json ? Self.encode(value) : text())
    }

    /// ``emit(_:text:)`` of what a command committed and its caller learns only from this output
    /// (a new ID, a new set): when standard output cannot be written, the error says what was
    /// committed (`committed`, such as "allocated ID 7 in set 2"), which cannot be undone.
    func emit<T: Encodable>(_ value: T, text: @autoclosure () -> String, committed: @autoclosure () -> String) throws(IOASIDError) {
        do { try emit(value, text: text()) } catch {
            var failure = error
            failure.message = "\(committed()), and committed it, but \(failure.message)"
            throw failure
        }
    }

    /// Writes `text` and a newline to standard output, reporting a failed write.
    static func standardOutput(_ text: String) throws(IOASIDError) {
        try standardOutput(bytes: Array((text + "\n").utf8))
    }

    /// Writes bytes to standard output, reporting a failed write.
    static func standardOutput(bytes: [UInt8]) throws(IOASIDError) {
        if let session = CommandSession.current { return try session.standardOutput(bytes) }
        do { try SystemFile.standardOutput.writeAll(bytes) } catch {
            throw IOASIDError.fileFailure("cannot write to standard output", error)
        }
    }

    /// Writes `text` to standard error; a failure there has nowhere to be reported.
    static func standardError(_ text: String) {
        if let session = CommandSession.current { return session.standardError(Array(text.utf8)) }
        try? SystemFile.standardError.writeAll(Array(text.utf8))
    }

    /// One JSON object (sorted keys, no escaped slashes) on one line.
    static func encode<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else {
            return #"{"error":{"code":"internalError","message":"the result could not be encoded as JSON"}}"#
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Runs `body`; an ``IOASIDError`` is printed (JSON on stderr with `--json`)
    /// and turned into its documented exit code.
    static func run(_ options: GlobalOptions, _ body: () throws -> Void) throws {
        try run(json: options.json, body)
    }

    /// ``run(_:_:)`` for a command that argument-parser did not parse (``QuickLookup``).
    static func run(json: Bool, _ body: () throws -> Void) throws {
        do { try body() } catch { throw exit(for: error, json: json) }
    }

    /// ``run(_:_:)`` for async commands.
    static func runAsync(_ options: GlobalOptions, _ body: () async throws -> Void) async throws {
        do { try await body() } catch { throw exit(for: error, json: options.json) }
    }

    /// Reports an ``IOASIDError`` (or an advised one) and gives its exit code;
    /// any other error passes through to argument-parser.
    private static func exit(for error: any Error, json: Bool) -> any Error {
        if let error = error as? IOASIDError {
            report(error, json: json)
            return ExitCode(ExitStatus.code(for: error))
        }
        if let failure = error as? AdvisedError {
            report(failure.error, hint: failure.hint, json: json)
            return ExitCode(ExitStatus.code(for: failure.error))
        }
        return error
    }

    /// The error document of docs/cli-json.md.
    struct ErrorDocument: Encodable {
        struct Body: Encodable {
            let code: String
            let message: String
            let cause: String?
            let hint: String?
        }
        let error: Body
    }

    /// Prints an error in the one style of the tool: `ioasid: error: MESSAGE (code)`,
    /// then `cause:` and `hint:` lines; or the JSON error document.
    static func report(code: String, message: String, cause: String? = nil, hint: String? = nil, json: Bool) {
        CommandSession.current?.failed(code)
        if json {
            standardError(encode(ErrorDocument(error: .init(code: code, message: message, cause: cause, hint: hint))) + "\n")
            return
        }
        var lines = "ioasid: error: \(Names.escaped(message)) (\(code))\n"
        if let cause { lines += "ioasid: cause: \(Names.escaped(cause))\n" }
        if let hint { lines += "ioasid: hint: \(Names.escaped(hint))\n" }
        standardError(lines)
    }

    static func report(_ error: IOASIDError, hint: String? = nil, json: Bool) {
        report(code: error.code.name, message: error.message, cause: error.cause.map { "\($0)" }, hint: hint ?? Advice.hint(for: error), json: json)
    }
}

/// An error together with advice that only the command knows (which set, which verb undoes it).
struct AdvisedError: Error {
    let error: IOASIDError
    let hint: String
}

/// What an operator can do about an error: the CLI's advice, kept out of the library's messages.
enum Advice {
    static func hint(for error: IOASIDError) -> String? {
        switch error.code {
        case .notInitialized: "create a store with `ioasid init` (or pass --store / set $IOASID_STORE to an existing one)"
        case .newerSchema: "this store was written by a newer ioasid; upgrade the tool (`ioasid --version` shows the schema it reads)"
        case .corruptStore: "run `ioasid verify` for details; restore the last good backup (docs/operations.md), or send `ioasid dump` output to support"
        case .readOnly: "open the store from a writable location, or as a user who may write it"
        case .storageFailure where (error.cause as? LMDBError) == .mapFull:
            "the data file reached the store's maximum map size; free sets no longer needed, or copy the store compacted (`ioasid backup --compact`) and restore the copy"
        case .storageFailure: storageHint(systemError(behind: error))
        case .setFrozen: "finish the migration with `ioasid migrate complete SID` or undo it with `ioasid migrate abort SID`"
        case .internalError: "this is a bug in ioasid; nothing was changed, please report it"
        case .subscriberLapsed:
            "it fell past its --max-lag/--max-age and no longer holds IDs back; rebuild its state from `ioasid events resync NAME` and continue after the sequence it prints"
        case .storeRestored:
            "the store was restored from a backup (a new epoch, see `ioasid status`): events you saw after its last one are gone; rebuild your state from `ioasid events resync NAME`"
        case .subscriberHasFollowers: "unsubscribe the subscribers that run after it (`ioasid events list` shows them) first"
        case .timedOut: "the FREE is committed and the ID stays free-pending; `ioasid find ID` shows what holds it back"
        default: nil
        }
    }

    /// What to do about a failed file or store operation, by the system error behind it.
    static func storageHint(_ errno: Int32?) -> String {
        switch errno {
        case ENOSPC, EDQUOT: "free space (or raise the quota) on the file system that holds the store or the output"
        case EPIPE: "the command reading the output stopped before the end; send the output to a file, or to a command that reads all of it"
        case ENAMETOOLONG, ENOENT, ENOTDIR, ELOOP: "check the path (--store, $IOASID_STORE, or the file named above)"
        case EMFILE, ENFILE: "too many files are open; raise the limit (`ulimit -n`) or close some"
        case ENOMEM: "the system is short of memory or address space (the store maps its data file); free some, or raise `ulimit -v`"
        case EIO: "the disk reported an I/O error; check the system log (`dmesg`) and the disk, and keep the last good backup at hand"
        case EAGAIN: "the system refused a new thread; check the limits on processes and threads (`ulimit -u`, /proc/sys/kernel/threads-max)"
        default: "check free disk space and the system log"
        }
    }

    /// The `errno` of the failed system call behind `error`, when its cause carries one
    /// (LMDB's own codes are negative and are not system errors).
    static func systemError(behind error: IOASIDError) -> Int32? {
        switch error.cause {
        case is DiskFull: ENOSPC
        case let cause as LMDBError where cause.code > 0: cause.code
        case let cause as DataFileError: cause.errno
        default: nil
        }
    }
}

/// Private data on the command line: hex (the one encoding, ``Hex`` of the
/// store's layout), with an optional `0x`.
extension Hex {
    /// Decodes an even number of hex digits, with an optional `0x`; `nil` otherwise
    /// (also the service's rule for `data` in request bodies).
    package static func decodeArgument(_ text: String) -> [UInt8]? {
        var digits = Substring(text)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
        return decode(Array(digits.utf8))
    }

    /// Parses `--data` (or what `name` says): hex bytes, or a usage error that says what is wrong.
    static func parseData(_ text: String, as name: String = "--data") throws -> [UInt8] {
        guard let bytes = decodeArgument(text) else {
            let prefixed = text.hasPrefix("0x") || text.hasPrefix("0X")
            let body = prefixed ? text.dropFirst(2) : Substring(text)
            let digits = body.count
            let isHexDigit = { (c: UInt8) in (48...57).contains(c) || (65...70).contains(c) || (97...102).contains(c) }
            if digits % 2 != 0, body.utf8.allSatisfy(isHexDigit) {
                let padded = text.prefix(prefixed ? 2 : 0) + "0" + body
                throw ValidationError("\(name) must be whole bytes: an even number of hex digits, got \(digits) (pad with a leading 0, e.g. \(padded))")
            }
            throw ValidationError("\(name) must be hex digits (0-9, a-f), got '\(Names.escaped(text))'")
        }
        return bytes
    }
}

/// Times in RFC 3339, UTC, with milliseconds: `2025-03-01T12:34:56.789Z`.
enum Timestamp {
    static func rfc3339(milliseconds: UInt64) -> String {
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds % 1000), 3))Z"
    }

    /// Milliseconds since 1970, now.
    static var nowMilliseconds: UInt64 { UInt64(max(0, Date().timeIntervalSince1970 * 1000)) }
}

/// `1 ID`, `2 IDs`.
func plural(_ count: some BinaryInteger, _ singular: String, _ pluralForm: String? = nil) -> String {
    "\(grouped(Int(clamping: count))) \(count == 1 ? singular : pluralForm ?? singular + "s")"
}

/// IDs as runs of consecutive ones (`1-4, 9, 12-13`), at most `limit` runs, then `…`.
func idRuns(_ ids: [UInt32], limit: Int = 20) -> String {
    var runs: [String] = []
    var index = 0
    while index < ids.count, runs.count < limit {
        var end = index
        while end + 1 < ids.count, ids[end] != .max, ids[end + 1] == ids[end] + 1 { end += 1 }
        runs.append(end == index ? "\(ids[index])" : "\(ids[index])-\(ids[end])")
        index = end + 1
    }
    return runs.joined(separator: ", ") + (index < ids.count ? ", …" : "")
}

/// The first `limit` items joined by `; `, then `…` when there are more.
func listed(_ items: [String], limit: Int = 20) -> String {
    items.prefix(limit).joined(separator: "; ") + (items.count > limit ? "; …" : "")
}
