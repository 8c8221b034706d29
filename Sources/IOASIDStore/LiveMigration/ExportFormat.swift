import Foundation

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
public enum ExportFormat {
    /// The value of the header's `format` field.
    public static let name = "ioasid-set-export"
    /// The version this software writes and reads.
    public static let version = 1

    /// Checks an export held in memory — header, every line, order, count and
    /// SHA-256 — without importing it, and returns its header.
    ///
    /// - Throws: ``IOASIDError`` — `exportChecksumMismatch`, `exportTruncated`,
    ///   `exportUnsupported`, `exportMalformed`.
    public static func validate(_ bytes: [UInt8]) throws(IOASIDError) -> ExportHeader {
        var reader = LineReader(bytes: bytes)
        return try IOASIDError.mapping { try IOASIDStore.validateExport(&reader, progress: nil) }
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

    /// The line, without its newline, keys sorted.
    func line() -> String {
        var s = "{"
        if !data.isEmpty { s += "\"data\":\"" + HexCoding.encode(data) + "\"," }
        if let guest { s += "\"guest\":\(guest)," }
        s += "\"id\":\(id)}"
        return s
    }

    init(id: UInt32, guest: UInt32?, data: [UInt8]) {
        self.id = id
        self.guest = guest
        self.data = data
    }

    private static let idKey = Array("id".utf8)[...]
    private static let guestKey = Array("guest".utf8)[...]
    private static let dataKey = Array("data".utf8)[...]

    /// Parses an ID line (fields `id`, optional `guest` and `data`, in any order).
    init(parsing line: ArraySlice<UInt8>) throws(FlatJSON.Failure) {
        var id: UInt32?
        var guest: UInt32?
        var data: [UInt8] = []
        try FlatJSON.forEachField(line) { (key, value) throws(FlatJSON.Failure) in
            switch (key, value) {
            case (Self.idKey, .number(let n)) where id == nil && n >= 1 && n <= UInt64(UInt32.max):
                id = UInt32(n)
            case (Self.guestKey, .number(let n)) where guest == nil && n <= UInt64(UInt32.max):
                guest = UInt32(n)
            case (Self.dataKey, .string(let hex)) where data.isEmpty:
                guard let bytes = HexCoding.decode(hex), !bytes.isEmpty else { throw FlatJSON.Failure() }
                data = bytes
            default:
                throw FlatJSON.Failure()
            }
        }
        guard let id else { throw FlatJSON.Failure() }
        self.init(id: id, guest: guest, data: data)
    }
}

/// A strict parser for the flat JSON objects of export lines: string keys,
/// and values that are non-negative integers, plain strings (no escapes) or booleans.
enum FlatJSON {
    struct Failure: Error {}

    /// A field's value; strings are the raw bytes between the quotes.
    enum Value: Equatable {
        case number(UInt64)
        case string(ArraySlice<UInt8>)
        case bool(Bool)
    }

    /// Parses a whole line into a dictionary (for the trailer).
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
            while i < end, bytes[i] != UInt8(ascii: "\"") {
                // Escapes and control characters never occur in the fields parsed here.
                guard bytes[i] != UInt8(ascii: "\\"), bytes[i] >= 0x20 else { throw Failure() }
                i += 1
            }
            guard i < end else { throw Failure() }
            defer { i += 1 }
            return bytes[start..<i]
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
                    let start = i
                    while i < end, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                        let (m, o1) = n.multipliedReportingOverflow(by: 10)
                        let (a, o2) = m.addingReportingOverflow(UInt64(bytes[i] - UInt8(ascii: "0")))
                        guard !o1, !o2 else { throw Failure() }
                        n = a
                        i += 1
                    }
                    // No leading zeros, fractions or exponents.
                    guard i - start == 1 || bytes[start] != UInt8(ascii: "0") else { throw Failure() }
                    if i < end, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                        throw Failure()
                    }
                    value = .number(n)
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

/// Lowercase hex for private data.
enum HexCoding {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? { decode(Array(text.utf8)[...]) }

    static func decode(_ utf8: ArraySlice<UInt8>) -> [UInt8]? {
        let utf8 = Array(utf8)
        guard utf8.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// Reads a file (or bytes in memory) line by line in large chunks, without
/// holding a file in memory.
struct LineReader {
    private let handle: FileHandle?
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEOF = false

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw IOASIDError(.invalidArgument, "cannot open \(path)")
        }
        self.handle = handle
    }

    init(bytes: [UInt8]) {
        handle = nil
        buffer = bytes
        atEOF = true
    }

    /// The next line without its newline, and whether a newline ended it; `nil` at the end.
    mutating func next() throws -> (line: ArraySlice<UInt8>, terminated: Bool)? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0a) {
                let line = buffer[start..<newline]
                start = newline + 1
                return (line, true)
            }
            if atEOF {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                return (line, false)
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            let chunk = try handle?.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { atEOF = true } else { buffer.append(contentsOf: chunk) }
        }
    }

    func close() { try? handle?.close() }
}
