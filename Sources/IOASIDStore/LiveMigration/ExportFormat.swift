import Crypto
import Foundation
import IOASIDMigrations
import LMDB

/// The set-export format: JSON Lines, versioned, checksummed end to end,
/// streamable in both directions.
///
/// ```text
/// {"count":3,"createdAt":…,"exportID":"…","format":"ioasid-set-export","quota":1000,"set":2,"sourceStore":"…","token":"vm:…","version":1}
/// {"guest":101,"id":201}
/// {"data":"0a0b","id":202}
/// {"guest":7,"id":390}
/// {"count":3,"end":true,"sha256":"…"}
/// ```
///
/// - Line 1, the header: format name and version, a unique export ID, the
///   source store's ID, the set's ID, token and quota, and the number of IDs.
/// - One line per allocated ID in ascending order: the host ID, its guest ID
///   if any, and its private data in hex if any. Holders stay behind.
/// - The trailer: the count again and the SHA-256 of every byte before the trailer line.
///
/// Every line is a flat JSON object of numbers, booleans and strings without
/// escapes, at most ``maximumLineLength`` bytes; a longer line is refused as
/// soon as it is seen.
public enum ExportFormat {
    /// The value of the header's `format` field.
    public static let name = "ioasid-set-export"
    /// The version this software writes and reads.
    public static let version = 1
    /// The longest line accepted, newline excluded (64 KiB).
    public static let maximumLineLength = 65_536

    /// Checks an export held in memory — header, every line, order, count and
    /// SHA-256 — without importing it, and returns its header.
    ///
    /// - Parameters:
    ///   - bytes: the whole export.
    ///   - maximumDataSize: the largest private data accepted per ID.
    /// - Throws: ``IOASIDError`` — `exportChecksumMismatch`, `exportTruncated`,
    ///   `exportUnsupported`, `exportMalformed`.
    public static func validate(_ bytes: [UInt8], maximumDataSize: Int = IOASIDStore.defaultMaximumDataSize) throws(IOASIDError) -> ExportHeader {
        var offset = 0
        var validator = ExportValidator(maximumDataSize: maximumDataSize)
        return try validator.run(read: { buffer, count throws(IOASIDError) in
            let n = min(count, bytes.count - offset)
            buffer.append(contentsOf: bytes[offset..<(offset + n)])
            offset += n
            return n
        }, entry: { _ in })
    }
}

/// The first line of an export.
public struct ExportHeader: Codable, Sendable, Equatable {
    /// Always ``ExportFormat/name``.
    public let format: String
    /// The format version (``ExportFormat/version``).
    public let version: Int
    /// A unique ID of this export (a UUID); a store imports each export at most once.
    public let exportID: String
    /// The ID of the store the set was exported from (hex).
    public let sourceStore: String
    /// The set's ID at the source.
    public let set: UInt32
    /// The set's owner token.
    public let token: String
    /// The set's quota.
    public let quota: UInt32
    /// How many IDs follow.
    public let count: Int
    /// When the export was made (milliseconds since 1970).
    public let createdAt: UInt64

    /// The header line, keys sorted, without its newline.
    func line() -> [UInt8] {
        // Tokens hold no control characters (``Names``); `"` and `\` are escaped.
        let escapedToken = token.replacingBackslashesAndQuotes()
        var s = "{\"count\":\(count),\"createdAt\":\(createdAt),\"exportID\":\"\(exportID)\",\"format\":\"\(format)\","
        s += "\"quota\":\(quota),\"set\":\(set),\"sourceStore\":\"\(sourceStore)\",\"token\":\"\(escapedToken)\",\"version\":\(version)}"
        return Array(s.utf8)
    }
}

/// What an export wrote.
public struct ExportSummary: Sendable, Equatable, Codable {
    /// The export's header.
    public let header: ExportHeader
    /// SHA-256 of everything before the trailer, in hex.
    public let sha256: String
}

/// One host ID the destination could not keep and the ID it got instead.
public struct Remap: Sendable, Equatable, Codable {
    /// The host ID at the source.
    public let from: IOASID
    /// The host ID at the destination.
    public let to: IOASID
    /// The guest ID, which never changes.
    public let guest: UInt32?
}

/// What an import did.
public struct ImportResult: Sendable, Equatable, Codable {
    /// The new set at the destination.
    public let set: SetID
    /// Its owner token.
    public let token: String
    /// The export that was imported.
    public let exportID: String
    /// How many IDs were imported.
    public let imported: Int
    /// The host IDs that were already in use at the destination and were remapped.
    public let remapped: [Remap]
}

/// One ID line of an export. Its data points into a buffer its reader
/// reuses: an entry is valid only during the call it is handed to, and is
/// never kept (so no line costs an allocation or a reference count).
struct ExportEntry {
    var id: UInt32
    var guest: UInt32?
    var data: UnsafeRawBufferPointer

    /// Appends the line and its newline to `out`, keys sorted.
    func append(to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        if !data.isEmpty {
            out.append(contentsOf: "\"data\":\"".utf8)
            Hex.append(data, to: &out)
            out.append(contentsOf: "\",".utf8)
        }
        if let guest {
            out.append(contentsOf: "\"guest\":".utf8)
            Self.appendDecimal(guest, to: &out)
            out.append(UInt8(ascii: ","))
        }
        out.append(contentsOf: "\"id\":".utf8)
        Self.appendDecimal(id, to: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    static func appendDecimal(_ value: UInt32, to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[9 - count] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
                count += 1
            } while n > 0
            out.append(contentsOf: buffer[(10 - count)...])
        }
    }

    /// Parses an ID line (fields `id`, optional `guest` and `data`, in any order),
    /// decoding its data into `buffer` (emptied first).
    static func parse(_ line: ArraySlice<UInt8>, dataInto buffer: inout [UInt8]) throws(FlatJSON.Failure) -> (id: UInt32, guest: UInt32?) {
        var id: UInt32?
        var guest: UInt32?
        var hasData = false
        buffer.removeAll(keepingCapacity: true)
        let parsed = line.withUnsafeBufferPointer { line in
            Result { () throws(FlatJSON.Failure) in
                try FlatJSON.forEachField(line) { (key, value) throws(FlatJSON.Failure) in
                    switch value {
                    case .number(let n) where id == nil && n >= 1 && n <= UInt64(UInt32.max) && FlatJSON.key(key, is: "id"):
                        id = UInt32(n)
                    case .number(let n) where guest == nil && n <= UInt64(UInt32.max) && FlatJSON.key(key, is: "guest"):
                        guest = UInt32(n)
                    case .string(let hex) where !hasData && FlatJSON.key(key, is: "data"):
                        guard Hex.decode(hex, appendingTo: &buffer), !buffer.isEmpty else { throw FlatJSON.Failure() }
                        hasData = true
                    default:
                        throw FlatJSON.Failure()
                    }
                }
            }
        }
        try parsed.get()
        guard let id else { throw FlatJSON.Failure() }
        return (id, guest)
    }

    /// The fixed part of an entry in the import spool, in native byte order
    /// (the spool never leaves this process); the data follows it.
    private struct Spooled {
        var id: UInt32
        var guest: UInt32
        var hasGuest: UInt32
        var length: UInt32
    }

    /// Appends the entry's spool form to `out`: its ``Spooled`` part, then its data.
    func spooled(into out: inout [UInt8]) {
        let fixed = Spooled(id: id, guest: guest ?? 0, hasGuest: guest == nil ? 0 : 1, length: UInt32(truncatingIfNeeded: data.count))
        withUnsafeBytes(of: fixed) { out.append(contentsOf: $0) }
        out.append(contentsOf: data)
    }

    /// Decodes the spooled entry at `offset` of `bytes` (see ``spooled(into:)``);
    /// its data points into `bytes`. Returns `nil` when `bytes` ends inside it.
    static func unspooled(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> (entry: ExportEntry, next: Int)? {
        let size = MemoryLayout<Spooled>.size
        guard offset + size <= bytes.count else { return nil }
        let fixed = bytes.loadUnaligned(fromByteOffset: offset, as: Spooled.self)
        let end = offset + size + Int(fixed.length)
        guard end <= bytes.count else { return nil }
        let data = UnsafeRawBufferPointer(rebasing: bytes[(offset + size)..<end])
        return (ExportEntry(id: fixed.id, guest: fixed.hasGuest == 1 ? fixed.guest : nil, data: data), end)
    }
}

/// A strict parser for the flat JSON objects of export lines: string keys,
/// and values that are non-negative integers, plain strings (no control
/// characters; only the escapes `\"`, `\\` and `\/`) or booleans. It works on
/// the bytes in place: an ID line is parsed with no allocation.
enum FlatJSON {
    struct Failure: Error {}

    /// A field's value. A string's bytes (unescaped) and a huge number's digits
    /// are `Bytes`: owned in ``Value`` (the header and trailer), borrowed for
    /// the call in ``BorrowedValue`` (``forEachField(_:_:)``), where they
    /// are in the line in the scanner's tokens.
    enum FieldValue<Bytes> {
        case number(UInt64)
        case string(Bytes)
        case bool(Bool)
        /// A number too large for 64 bits, kept as its digits.
        case hugeNumber(Bytes)

        /// The same value with its bytes (if it has any) transformed.
        func map<Other, E: Error>(_ transform: (Bytes) throws(E) -> Other) throws(E) -> FieldValue<Other> {
            switch self {
            case .number(let n): .number(n)
            case .string(let bytes): .string(try transform(bytes))
            case .bool(let b): .bool(b)
            case .hugeNumber(let bytes): .hugeNumber(try transform(bytes))
            }
        }
    }

    /// A field's value, owned (for the header and trailer).
    typealias Value = FieldValue<ArraySlice<UInt8>>
    /// A field's value as ``forEachField(_:_:)`` hands it over: its bytes are valid only during the call.
    typealias BorrowedValue = FieldValue<UnsafeBufferPointer<UInt8>>

    /// Whether a key's bytes are `name`.
    static func key(_ key: UnsafeBufferPointer<UInt8>, is name: StaticString) -> Bool {
        guard key.count == name.utf8CodeUnitCount, let base = key.baseAddress else { return key.isEmpty && name.utf8CodeUnitCount == 0 }
        return memcmp(base, name.utf8Start, key.count) == 0
    }

    /// Parses a whole line into a dictionary (for the header and trailer).
    static func parse(_ bytes: ArraySlice<UInt8>) throws(Failure) -> [String: Value] {
        let parsed = bytes.withUnsafeBufferPointer { bytes in
            Result { () throws(Failure) -> [String: Value] in
                var result: [String: Value] = [:]
                try forEachField(bytes) { (key, value) throws(Failure) in
                    let owned = value.map { Array($0)[...] }
                    guard let name = String(validating: key, as: UTF8.self), result.updateValue(owned, forKey: name) == nil else {
                        throw Failure()
                    }
                }
                return result
            }
        }
        return try parsed.get()
    }

    /// Calls `body` with each key and value of a flat object; fails on anything else.
    static func forEachField(
        _ bytes: UnsafeBufferPointer<UInt8>,
        _ body: (UnsafeBufferPointer<UInt8>, BorrowedValue) throws(Failure) -> Void
    ) throws(Failure) {
        var scanner = Scanner(bytes: bytes)
        try scanner.expect(UInt8(ascii: "{"))
        scanner.skipSpace()
        if scanner.peek == UInt8(ascii: "}") {
            scanner.index += 1
        } else {
            while true {
                let key = try scanner.string()
                try scanner.expect(UInt8(ascii: ":"))
                let value = try scanner.value()
                try key.withText(in: bytes) { (key) throws(Failure) in
                    switch value {
                    case .string(let token), .hugeNumber(let token):
                        try token.withText(in: bytes) { (text) throws(Failure) in try body(key, value.map { _ in text }) }
                    case .number, .bool:
                        try body(key, value.map { _ in UnsafeBufferPointer(start: nil, count: 0) })
                    }
                }
                scanner.skipSpace()
                guard let next = scanner.peek else { throw Failure() }
                if next == UInt8(ascii: ",") {
                    scanner.index += 1
                    continue
                }
                try scanner.expect(UInt8(ascii: "}"))
                break
            }
        }
        scanner.skipSpace()
        guard scanner.peek == nil else { throw Failure() }
    }

    /// A run of the line's bytes — a string's, or a huge number's digits —
    /// and whether it holds escapes.
    private struct StringToken {
        let range: Range<Int>
        let escaped: Bool

        /// Calls `use` with the string's bytes, unescaped (a copy only when it has escapes).
        func withText(in bytes: UnsafeBufferPointer<UInt8>, _ use: (UnsafeBufferPointer<UInt8>) throws(Failure) -> Void) throws(Failure) {
            guard escaped else { return try use(UnsafeBufferPointer(rebasing: bytes[range])) }
            var text: [UInt8] = []
            var i = range.lowerBound
            while i < range.upperBound {
                // The scanner checked every escape: a backslash and the character it stands for.
                if bytes[i] == UInt8(ascii: "\\") { i += 1 }
                text.append(bytes[i])
                i += 1
            }
            let result = text.withUnsafeBufferPointer { text in Result { () throws(Failure) in try use(text) } }
            try result.get()
        }
    }

    /// The tokens of one line, read left to right (no closures capture its
    /// position, so reading it costs no dynamic exclusivity checks).
    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
        }

        mutating func expect(_ c: UInt8) throws(Failure) {
            skipSpace()
            guard peek == c else { throw Failure() }
            index += 1
        }

        /// The string starting at the next quote: no control characters, and
        /// only the escapes a token needs: \" \\ \/ (never \u).
        mutating func string() throws(Failure) -> StringToken {
            try expect(UInt8(ascii: "\""))
            let start = index
            var escaped = false
            while let c = peek, c != UInt8(ascii: "\"") {
                guard c >= 0x20 else { throw Failure() }
                if c == UInt8(ascii: "\\") {
                    guard index + 1 < bytes.count,
                        bytes[index + 1] == UInt8(ascii: "\"") || bytes[index + 1] == UInt8(ascii: "\\") || bytes[index + 1] == UInt8(ascii: "/")
                    else { throw Failure() }
                    escaped = true
                    index += 2
                    continue
                }
                index += 1
            }
            guard peek != nil else { throw Failure() }
            index += 1
            return StringToken(range: start..<(index - 1), escaped: escaped)
        }

        /// The value after a key's colon.
        mutating func value() throws(Failure) -> FieldValue<StringToken> {
            skipSpace()
            guard let c = peek else { throw Failure() }
            switch c {
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                var n: UInt64 = 0
                var overflow = false
                let start = index
                while let d = peek, d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
                    let (m, o1) = n.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(UInt64(d - UInt8(ascii: "0")))
                    overflow = overflow || o1 || o2
                    n = a
                    index += 1
                }
                // No leading zeros, fractions or exponents.
                guard index - start == 1 || bytes[start] != UInt8(ascii: "0"), index - start <= 64 else { throw Failure() }
                if let next = peek, next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
                    throw Failure()
                }
                return overflow ? .hugeNumber(StringToken(range: start..<index, escaped: false)) : .number(n)
            case UInt8(ascii: "t") where UnsafeBufferPointer(rebasing: bytes[index...]).starts(with: "true".utf8):
                index += 4
                return .bool(true)
            case UInt8(ascii: "f") where UnsafeBufferPointer(rebasing: bytes[index...]).starts(with: "false".utf8):
                index += 5
                return .bool(false)
            default:
                throw Failure()
            }
        }
    }
}

/// Checks an export in one linear pass as its bytes arrive: splits lines
/// (refusing one longer than ``ExportFormat/maximumLineLength`` at once),
/// parses and checks the header, every entry (ascending IDs, data within the
/// limit) and the trailer, hashes what it reads a chunk at a time, and once
/// the trailer is in, checks that no guest ID is named twice. Each entry is
/// handed on as soon as its line is checked; the caller keeps it until the
/// whole export has been verified.
struct ExportValidator {
    let maximumDataSize: Int
    private var header: ExportHeader?
    private(set) var count = 0
    private var hasher = SHA256()
    private var lineNumber = 0
    private var previous: UInt32 = 0
    private var guests = GuestIDCheck()
    /// Where each ID line's data is decoded (reused line after line).
    private var dataBuffer: [UInt8] = []

    init(maximumDataSize: Int) { self.maximumDataSize = maximumDataSize }

    /// Reads everything `read` supplies (it appends up to `count` bytes to the
    /// buffer and returns how many, 0 at the end) and validates it, calling
    /// `entry` for every checked ID line. Returns the header once the trailer
    /// has been read and verified; throws on the first problem.
    @discardableResult
    mutating func run(
        read: (inout [UInt8], Int) throws(IOASIDError) -> Int,
        entry: (ExportEntry) throws(IOASIDError) -> Void,
        progress: ((Int, Int) -> Void)? = nil
    ) throws(IOASIDError) -> ExportHeader {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        var start = 0  // first byte of the current line
        var scanned = 0  // bytes after `start` known to hold no newline
        var atEnd = false
        while true {
            if let newline = Self.newline(in: buffer, from: start + scanned) {
                let line = buffer[start..<newline]
                // The lines before this one are not hashed yet: that is done a chunk at a time, as the buffer moves on.
                let unhashed = buffer[..<start]
                start = newline + 1
                scanned = 0
                if let header = try self.line(line, terminated: true, unhashed: unhashed, entry: entry, progress: progress) {
                    // Nothing may follow the trailer.
                    if start < buffer.count { throw IOASIDError(.exportMalformed, "data follows the trailer on line \(lineNumber + 1)") }
                    var probe: [UInt8] = []
                    if try read(&probe, 1) > 0 { throw IOASIDError(.exportMalformed, "data follows the trailer on line \(lineNumber + 1)") }
                    return header
                }
                continue
            }
            scanned = buffer.count - start
            if scanned > ExportFormat.maximumLineLength {
                throw IOASIDError(
                    .exportMalformed,
                    "line \(lineNumber + 1) is longer than \(ExportFormat.maximumLineLength) bytes"
                )
            }
            if atEnd {
                guard start < buffer.count else {
                    throw IOASIDError(.exportTruncated, header == nil ? "the export is empty" : "the export ends without its trailer (after \(count) of \(header?.count ?? 0) IDs)")
                }
                _ = try self.line(buffer[start...], terminated: false, unhashed: [], entry: entry, progress: progress)
                throw IOASIDError(.exportTruncated, "the export ends inside line \(lineNumber)")
            }
            if start > 0 {
                hash(buffer[..<start])
                buffer.removeFirst(start)
                start = 0
            }
            if try read(&buffer, 1 << 20) == 0 { atEnd = true }
        }
    }

    /// Checks one line; returns the header after the trailer, `nil` before it.
    /// `unhashed` is what precedes the line and is not hashed yet (hashed
    /// before the digest is checked, when the line is the trailer).
    private mutating func line(
        _ line: ArraySlice<UInt8>, terminated: Bool, unhashed: ArraySlice<UInt8>,
        entry: (ExportEntry) throws(IOASIDError) -> Void, progress: ((Int, Int) -> Void)?
    ) throws(IOASIDError) -> ExportHeader? {
        lineNumber += 1
        guard let expected = header?.count else {
            let parsed = try Self.header(line, terminated: terminated)
            if !terminated { throw IOASIDError(.exportTruncated, "the export ends inside its header") }
            self.header = parsed
            return nil
        }
        if let parsed = try? ExportEntry.parse(line, dataInto: &dataBuffer) {
            guard terminated else { throw IOASIDError(.exportTruncated, "the export ends inside line \(lineNumber)") }
            guard parsed.id > previous else {
                throw IOASIDError(.exportMalformed, "line \(lineNumber): IDs must be in ascending order")
            }
            guard dataBuffer.count <= maximumDataSize else {
                throw IOASIDError(
                    .exportMalformed,
                    "line \(lineNumber): ID \(parsed.id) carries \(dataBuffer.count) bytes of data, more than the limit of \(maximumDataSize)"
                )
            }
            if let guest = parsed.guest { guests.note(guest, line: lineNumber) }
            previous = parsed.id
            count += 1
            guard count <= expected else {
                throw IOASIDError(.exportMalformed, "the export holds more IDs than its header's \(expected)")
            }
            let handed = dataBuffer.withUnsafeBytes { data in
                Result { () throws(IOASIDError) in try entry(ExportEntry(id: parsed.id, guest: parsed.guest, data: data)) }
            }
            try handed.get()
            if count % 65536 == 0 { progress?(count, expected) }
            return nil
        }
        let fields: [String: FlatJSON.Value]
        do { fields = try FlatJSON.parse(line) } catch {
            if !terminated { throw IOASIDError(.exportTruncated, "the export ends inside line \(lineNumber)") }
            throw IOASIDError(.exportMalformed, "line \(lineNumber) is not valid")
        }
        guard fields["end"] != nil else {
            if !terminated { throw IOASIDError(.exportTruncated, "the export ends inside line \(lineNumber)") }
            throw IOASIDError(.exportMalformed, "line \(lineNumber) is not a valid ID line")
        }
        guard fields.count == 3, fields["end"] == .bool(true), case .number(let n)? = fields["count"],
            case .string(let digest)? = fields["sha256"]
        else { throw IOASIDError(.exportMalformed, "line \(lineNumber) is not a valid trailer") }
        guard terminated else { throw IOASIDError(.exportTruncated, "the export ends inside its trailer") }
        hash(unhashed)
        let actual = Hex.encode(Array(hasher.finalize()))
        guard digest.elementsEqual(actual.utf8) else {
            throw IOASIDError(.exportChecksumMismatch, "the export's SHA-256 does not match its contents")
        }
        guard n == UInt64(count), count == expected else {
            throw IOASIDError(.exportMalformed, "the export holds \(count) IDs but says \(n) (header \(expected))")
        }
        if let repeated = guests.firstRepeat() {
            throw IOASIDError(.exportMalformed, "line \(repeated.line): guest ID \(repeated.guest) appears twice")
        }
        progress?(count, expected)
        return self.header
    }

    /// The index of the first newline at or after `from`.
    private static func newline(in buffer: [UInt8], from: Int) -> Int? {
        buffer.withUnsafeBytes { bytes in
            guard from < bytes.count, let base = bytes.baseAddress, let found = memchr(base + from, 0x0a, bytes.count - from) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
    }

    private mutating func hash(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    }

    /// Parses and checks the header line, saying exactly which field is wrong.
    private static func header(_ line: ArraySlice<UInt8>, terminated: Bool) throws(IOASIDError) -> ExportHeader {
        let fields: [String: FlatJSON.Value]
        do { fields = try FlatJSON.parse(line) } catch {
            if !terminated { throw IOASIDError(.exportTruncated, "the export ends inside its header") }
            throw IOASIDError(.exportMalformed, "line 1 is not an export header")
        }
        func text(_ name: String) throws(IOASIDError) -> String {
            guard case .string(let raw)? = fields[name], let value = String(validating: raw, as: UTF8.self) else {
                throw IOASIDError(.exportMalformed, "the header has no valid \(name)")
            }
            return value
        }
        func number(_ name: String, bits: Int) throws(IOASIDError) -> UInt64 {
            switch fields[name] {
            case .number(let n)? where bits == 64 || n < (1 << UInt64(bits)):
                return n
            case .number(let n)?:
                throw IOASIDError(.exportMalformed, "\(name) \(n) in the header does not fit \(bits) bits")
            case .hugeNumber(let digits)?:
                throw IOASIDError(.exportMalformed, "\(name) \(String(decoding: digits, as: UTF8.self)) in the header does not fit \(bits) bits")
            default:
                throw IOASIDError(.exportMalformed, "the header has no valid \(name)")
            }
        }
        guard case .string(let formatRaw)? = fields["format"] else {
            throw IOASIDError(.exportMalformed, "line 1 is not an export header")
        }
        let format = String(decoding: formatRaw, as: UTF8.self)
        let version = fields["version"].flatMap { if case .number(let n) = $0 { n } else { nil } }
        guard format == ExportFormat.name, version == UInt64(ExportFormat.version) else {
            throw IOASIDError(
                .exportUnsupported,
                "unsupported export format \(Names.escaped(format)) version \(version.map(String.init) ?? "?"); this software reads \(ExportFormat.name) version \(ExportFormat.version)"
            )
        }
        let known: Set<String> = ["count", "createdAt", "exportID", "format", "quota", "set", "sourceStore", "token", "version"]
        if let extra = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw IOASIDError(.exportMalformed, "the header has an unknown field \(Names.escaped(extra))")
        }
        let token = try text("token")
        // Made by the source store, perhaps before separators and bidirectional controls were refused.
        do { try Names.check(token, as: "token", existing: true) } catch {
            throw IOASIDError(.exportMalformed, "the header's token is not valid: \(error.message)")
        }
        let exportID = try text("exportID")
        guard UUIDBytes.parse(exportID) != nil else { throw IOASIDError(.exportMalformed, "the export ID \(Names.escaped(exportID)) is not a UUID") }
        let sourceStore = try text("sourceStore")
        guard sourceStore.utf8.count <= 64, Hex.decode(sourceStore) != nil else {
            throw IOASIDError(.exportMalformed, "the source store ID is not hex")
        }
        let quota = UInt32(try number("quota", bits: 32))
        let count = try number("count", bits: 32)
        let set = UInt32(try number("set", bits: 32))
        let createdAt = try number("createdAt", bits: 64)
        guard quota > 0, count <= UInt64(quota) else {
            throw IOASIDError(.exportMalformed, "the header's count \(count) does not fit its quota \(quota)")
        }
        return ExportHeader(
            format: format, version: ExportFormat.version, exportID: exportID, sourceStore: sourceStore,
            set: set, token: token, quota: quota, count: Int(count), createdAt: createdAt
        )
    }
}

extension String {
    /// `\` and `"` escaped for a JSON string.
    fileprivate func replacingBackslashesAndQuotes() -> String {
        var out = ""
        for c in unicodeScalars {
            if c == "\\" || c == "\"" { out.unicodeScalars.append("\\") }
            out.unicodeScalars.append(c)
        }
        return out
    }
}

extension FlatJSON.FieldValue: Equatable where Bytes: Equatable {}
