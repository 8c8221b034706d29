import Crypto
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

/// One ID line of an export.
struct ExportEntry: Equatable {
    var id: UInt32
    var guest: UInt32?
    var data: [UInt8]

    init(id: UInt32, guest: UInt32?, data: [UInt8]) {
        self.id = id
        self.guest = guest
        self.data = data
    }

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

    private static let idKey = Array("id".utf8)[...]
    private static let guestKey = Array("guest".utf8)[...]
    private static let dataKey = Array("data".utf8)[...]

    /// Parses an ID line (fields `id`, optional `guest` and `data`, in any order).
    init(parsing line: ArraySlice<UInt8>) throws(FlatJSON.Failure) {
        var id: UInt32?
        var guest: UInt32?
        var data: [UInt8]?
        try FlatJSON.forEachField(line) { (key, value) throws(FlatJSON.Failure) in
            switch (key, value) {
            case (Self.idKey, .number(let n)) where id == nil && n >= 1 && n <= UInt64(UInt32.max):
                id = UInt32(n)
            case (Self.guestKey, .number(let n)) where guest == nil && n <= UInt64(UInt32.max):
                guest = UInt32(n)
            case (Self.dataKey, .string(let hex)) where data == nil:
                guard let bytes = Hex.decode(hex), !bytes.isEmpty else { throw FlatJSON.Failure() }
                data = bytes
            default:
                throw FlatJSON.Failure()
            }
        }
        guard let id else { throw FlatJSON.Failure() }
        self.id = id
        self.guest = guest
        self.data = data ?? []
    }

    /// A compact binary form for the import spool: `u32 id, u8 hasGuest, [u32 guest], u32 length, data`.
    func spooled(into out: inout [UInt8]) {
        out.append(contentsOf: ByteWriter.u32(id))
        if let guest {
            out.append(1)
            out.append(contentsOf: ByteWriter.u32(guest))
        } else {
            out.append(0)
        }
        out.append(contentsOf: ByteWriter.u32(UInt32(data.count)))
        out.append(contentsOf: data)
    }
}

/// A strict parser for the flat JSON objects of export lines: string keys,
/// and values that are non-negative integers, plain strings (no escapes, no
/// control characters) or booleans.
enum FlatJSON {
    struct Failure: Error {}

    /// A field's value; strings are the raw bytes between the quotes.
    enum Value: Equatable {
        case number(UInt64)
        case string(ArraySlice<UInt8>)
        case bool(Bool)
        /// A number too large for 64 bits, kept as its digits.
        case hugeNumber(ArraySlice<UInt8>)
    }

    /// Parses a whole line into a dictionary (for the header and trailer).
    static func parse(_ bytes: ArraySlice<UInt8>) throws(Failure) -> [String: Value] {
        var result: [String: Value] = [:]
        try forEachField(bytes) { (key, value) throws(Failure) in
            guard let name = String(validating: key, as: UTF8.self), result.updateValue(value, forKey: name) == nil else {
                throw Failure()
            }
        }
        return result
    }

    /// Calls `body` with each key and value of a flat object; fails on anything else.
    static func forEachField(
        _ bytes: ArraySlice<UInt8>,
        _ body: (ArraySlice<UInt8>, Value) throws(Failure) -> Void
    ) throws(Failure) {
        var i = bytes.startIndex
        let end = bytes.endIndex
        func skipSpace() { while i < end, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 } }
        func expect(_ c: UInt8) throws(Failure) {
            skipSpace()
            guard i < end, bytes[i] == c else { throw Failure() }
            i += 1
        }
        func string() throws(Failure) -> ArraySlice<UInt8> {
            try expect(UInt8(ascii: "\""))
            let start = i
            var unescaped: [UInt8]?  // only when the string has escapes
            while i < end, bytes[i] != UInt8(ascii: "\"") {
                guard bytes[i] >= 0x20 else { throw Failure() }  // no control characters
                if bytes[i] == UInt8(ascii: "\\") {
                    // Only the escapes a token needs: \" \\ \/ (never \u: no control characters).
                    guard i + 1 < end, [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/")].contains(bytes[i + 1]) else {
                        throw Failure()
                    }
                    if unescaped == nil { unescaped = Array(bytes[start..<i]) }
                    unescaped?.append(bytes[i + 1])
                    i += 2
                    continue
                }
                unescaped?.append(bytes[i])
                i += 1
            }
            guard i < end else { throw Failure() }
            defer { i += 1 }
            return unescaped.map { $0[...] } ?? bytes[start..<i]
        }
        try expect(UInt8(ascii: "{"))
        skipSpace()
        if i < end, bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                let key = try string()
                try expect(UInt8(ascii: ":"))
                skipSpace()
                guard i < end else { throw Failure() }
                let value: Value
                switch bytes[i] {
                case UInt8(ascii: "\""):
                    value = .string(try string())
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    var n: UInt64 = 0
                    var overflow = false
                    let start = i
                    while i < end, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                        let (m, o1) = n.multipliedReportingOverflow(by: 10)
                        let (a, o2) = m.addingReportingOverflow(UInt64(bytes[i] - UInt8(ascii: "0")))
                        overflow = overflow || o1 || o2
                        n = a
                        i += 1
                    }
                    // No leading zeros, fractions or exponents.
                    guard i - start == 1 || bytes[start] != UInt8(ascii: "0"), i - start <= 64 else { throw Failure() }
                    if i < end, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                        throw Failure()
                    }
                    value = overflow ? .hugeNumber(bytes[start..<i]) : .number(n)
                case UInt8(ascii: "t") where bytes[i...].starts(with: "true".utf8):
                    i += 4
                    value = .bool(true)
                case UInt8(ascii: "f") where bytes[i...].starts(with: "false".utf8):
                    i += 5
                    value = .bool(false)
                default:
                    throw Failure()
                }
                try body(key, value)
                skipSpace()
                guard i < end else { throw Failure() }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                break
            }
        }
        skipSpace()
        guard i == end else { throw Failure() }
    }
}

/// Checks an export in one linear pass as its bytes arrive: splits lines
/// (refusing one longer than ``ExportFormat/maximumLineLength`` at once),
/// parses and checks the header, every entry (ascending IDs, unique guest IDs,
/// data within the limit) and the trailer, and hashes what it reads. Each
/// entry is handed on as soon as it is checked; the caller keeps it until the
/// trailer's SHA-256 has been verified.
struct ExportValidator {
    let maximumDataSize: Int
    private var header: ExportHeader?
    private(set) var count = 0
    private var hasher = SHA256()
    private var lineNumber = 0
    private var previous: UInt32 = 0
    private var guests = Set<UInt32>()

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
            if let newline = buffer[(start + scanned)...].firstIndex(of: 0x0a) {
                let line = buffer[start..<newline]
                start = newline + 1
                scanned = 0
                if let header = try self.line(line, terminated: true, entry: entry, progress: progress) {
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
                _ = try self.line(buffer[start...], terminated: false, entry: entry, progress: progress)
                throw IOASIDError(.exportTruncated, "the export ends inside line \(lineNumber)")
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            if try read(&buffer, 1 << 20) == 0 { atEnd = true }
        }
    }

    /// Checks one line; returns the header after the trailer, `nil` before it.
    private mutating func line(
        _ line: ArraySlice<UInt8>, terminated: Bool,
        entry: (ExportEntry) throws(IOASIDError) -> Void, progress: ((Int, Int) -> Void)?
    ) throws(IOASIDError) -> ExportHeader? {
        lineNumber += 1
        guard let header else {
            let parsed = try Self.header(line, terminated: terminated)
            if !terminated { throw IOASIDError(.exportTruncated, "the export ends inside its header") }
            self.header = parsed
            hash(line)
            return nil
        }
        if let parsed = try? ExportEntry(parsing: line) {
            guard terminated else { throw IOASIDError(.exportTruncated, "the export ends inside line \(lineNumber)") }
            guard parsed.id > previous else {
                throw IOASIDError(.exportMalformed, "line \(lineNumber): IDs must be in ascending order")
            }
            guard parsed.data.count <= maximumDataSize else {
                throw IOASIDError(
                    .exportMalformed,
                    "line \(lineNumber): ID \(parsed.id) carries \(parsed.data.count) bytes of data, more than the limit of \(maximumDataSize)"
                )
            }
            if let guest = parsed.guest, !guests.insert(guest).inserted {
                throw IOASIDError(.exportMalformed, "line \(lineNumber): guest ID \(guest) appears twice")
            }
            previous = parsed.id
            count += 1
            guard count <= header.count else {
                throw IOASIDError(.exportMalformed, "the export holds more IDs than its header's \(header.count)")
            }
            hash(line)
            try entry(parsed)
            if count % 65536 == 0 { progress?(count, header.count) }
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
        let actual = Hex.encode(Array(hasher.finalize()))
        guard digest.elementsEqual(actual.utf8) else {
            throw IOASIDError(.exportChecksumMismatch, "the export's SHA-256 does not match its contents")
        }
        guard n == UInt64(count), count == header.count else {
            throw IOASIDError(.exportMalformed, "the export holds \(count) IDs but says \(n) (header \(header.count))")
        }
        progress?(count, header.count)
        return header
    }

    private mutating func hash(_ line: ArraySlice<UInt8>) {
        line.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        hasher.update(data: [0x0a])
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
        do { try Names.check(token, as: "token") } catch {
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
