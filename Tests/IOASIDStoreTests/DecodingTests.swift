import Foundation
import IOASIDMigrations
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

// The failure paths of the record decoders (`StoreLayout.swift`), the migrator's
// history checks, and the export parser and importer. Every malformed input is
// a valid one with exactly one thing changed, and each suite first shows that
// the valid one gets through, so each refusal is for the reason its case names.

// MARK: Records

/// A record's bytes, written field by field so that one field can be changed.
private enum RecordBytes {
    /// A ``SetRecord``: version 2 carries the lease and owner after the token.
    static func set(version: UInt8 = 2, tokenLength: UInt32? = nil, token: [UInt8] = Array("vm".utf8), trailing: [UInt8] = []) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        w.u8(0)  // flags
        w.u32(5)  // quota
        w.u32(0)  // count
        w.u32(0)  // pending
        w.u32(tokenLength ?? UInt32(token.count))
        w.raw(token)
        if version == 2 {
            w.u64(0)  // lease
            w.u64(0)  // renewed at
            w.u32(0)  // owner pid
            w.u64(0)  // owner start time
        }
        w.raw(trailing)
        return w.bytes
    }

    /// An ``IDRecord`` of set 2 with guest 7 and two bytes of data.
    static func id(version: UInt8 = 1, state: UInt8 = 0, hasGuest: UInt8 = 1, dataLength: UInt32 = 2, trailing: [UInt8] = []) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        w.u8(state)
        w.u32(2)
        w.u8(hasGuest)
        if hasGuest == 1 { w.u32(7) }
        w.u32(dataLength)
        w.raw([0xca, 0xfe])
        w.raw(trailing)
        return w.bytes
    }

    /// An ``EventRecord`` about set 2 carrying an ID (`fields` 0x41 in version 2, 0x01 in version 1).
    static func event(version: UInt8 = 2, fields: UInt8? = nil, trailing: [UInt8] = []) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        w.u8(1)  // kind
        w.u64(1_700_000_000_000)
        w.u32(2)  // set
        w.u8(fields ?? (version == 1 ? 0x01 : 0x41))
        w.u32(3)  // id
        w.string("vm")
        if version == 2 { w.u32(1) }  // epoch
        w.raw(trailing)
        return w.bytes
    }

    /// A ``SubscriberRecord`` for sets 2 and 3, kinds 0–3, running after "a".
    static func subscriber(
        version: UInt8 = 2, hasSets: UInt8 = 1, setCount: UInt32 = 2, hasKinds: UInt8 = 1,
        observer: UInt8 = 0, lapsed: UInt8 = 0, afterCount: UInt32 = 1, trailing: [UInt8] = []
    ) -> [UInt8] {
        var w = ByteWriter()
        w.u8(version)
        w.u64(9)  // acknowledged through
        w.u8(hasSets)
        if hasSets == 1 {
            w.u32(setCount)
            w.u32(2)
            w.u32(3)
        }
        w.u8(hasKinds)
        if hasKinds == 1 { w.u16(0x000f) }
        if version == 2 {
            w.u8(observer)
            w.u8(lapsed)
            w.u64(0)  // max lag
            w.u64(0)  // max age
            w.u32(afterCount)
            w.string("a")
            w.u64(0)  // pending count
            w.u64(0)  // counted through
        }
        w.raw(trailing)
        return w.bytes
    }
}

/// Which decoder reads a malformed record.
enum RecordDecoder: Sendable, CaseIterable {
    case set, id, idOwner, event, eventKindAndSet, subscriber

    func decode(_ bytes: [UInt8]) throws {
        try ValueReader.reading(bytes) { r in
            switch self {
            case .set: _ = try SetRecord(decoding: &r)
            case .id: _ = try IDRecord(decoding: &r)
            case .idOwner: _ = try IDRecord.owner(decoding: &r)
            case .event: _ = try EventRecord(decoding: &r)
            case .eventKindAndSet: _ = try EventRecord.kindAndSet(decoding: &r)
            case .subscriber: _ = try SubscriberRecord(decoding: &r)
            }
        }
    }
}

struct MalformedRecord: Sendable, CustomTestStringConvertible {
    let name: String
    let decoder: RecordDecoder
    let bytes: [UInt8]

    var testDescription: String { name }

    static let all: [MalformedRecord] = [
        // SetRecord
        .init(name: "set: version 3", decoder: .set, bytes: RecordBytes.set(version: 3)),
        .init(name: "set: version 0", decoder: .set, bytes: RecordBytes.set(version: 0)),
        .init(name: "set: token longer than the record", decoder: .set, bytes: RecordBytes.set(tokenLength: 1000)),
        .init(name: "set: token not UTF-8", decoder: .set, bytes: RecordBytes.set(token: [0xff, 0xfe])),
        .init(name: "set: a trailing byte", decoder: .set, bytes: RecordBytes.set(trailing: [0])),
        .init(name: "set: version 1 followed by version 2's fields", decoder: .set, bytes: RecordBytes.set(version: 1, trailing: Array(repeating: 0, count: 28))),
        // IDRecord
        .init(name: "id: version 2", decoder: .id, bytes: RecordBytes.id(version: 2)),
        .init(name: "id: state 2", decoder: .id, bytes: RecordBytes.id(state: 2)),
        .init(name: "id: guest tag 2", decoder: .id, bytes: RecordBytes.id(hasGuest: 2)),
        .init(name: "id: data longer than the record", decoder: .id, bytes: RecordBytes.id(dataLength: 3)),
        .init(name: "id: a trailing byte", decoder: .id, bytes: RecordBytes.id(trailing: [0])),
        .init(name: "id owner: version 0", decoder: .idOwner, bytes: RecordBytes.id(version: 0)),
        // EventRecord
        .init(name: "event: version 3", decoder: .event, bytes: RecordBytes.event(version: 3)),
        .init(name: "event: unknown field bit 7", decoder: .event, bytes: RecordBytes.event(fields: 0xc1)),
        .init(name: "event: version 1 with a capacity (a version 2 field)", decoder: .event, bytes: RecordBytes.event(version: 1, fields: 0x11)),
        .init(name: "event: a trailing byte", decoder: .event, bytes: RecordBytes.event(trailing: [0])),
        .init(name: "event kind and set: version 0", decoder: .eventKindAndSet, bytes: RecordBytes.event(version: 0)),
        // SubscriberRecord
        .init(name: "subscriber: version 3", decoder: .subscriber, bytes: RecordBytes.subscriber(version: 3)),
        .init(name: "subscriber: more sets than bytes", decoder: .subscriber, bytes: RecordBytes.subscriber(setCount: 1000)),
        .init(name: "subscriber: set tag 2", decoder: .subscriber, bytes: RecordBytes.subscriber(hasSets: 2)),
        .init(name: "subscriber: kind tag 2", decoder: .subscriber, bytes: RecordBytes.subscriber(hasKinds: 2)),
        .init(name: "subscriber: observer byte 2", decoder: .subscriber, bytes: RecordBytes.subscriber(observer: 2)),
        .init(name: "subscriber: lapsed byte 2", decoder: .subscriber, bytes: RecordBytes.subscriber(lapsed: 2)),
        .init(name: "subscriber: more predecessors than bytes", decoder: .subscriber, bytes: RecordBytes.subscriber(afterCount: 1000)),
        .init(name: "subscriber: a trailing byte", decoder: .subscriber, bytes: RecordBytes.subscriber(trailing: [0])),
        .init(name: "subscriber: version 1 followed by version 2's fields", decoder: .subscriber, bytes: RecordBytes.subscriber(version: 1, trailing: [0, 0])),
    ]
}

@Suite("Decoding failures")
struct DecodingTests {
    @Test("The record builders write what the encoders write, so each malformed case changes only the field it names")
    func buildersMatchEncoders() throws {
        let set = SetRecord(token: "vm", quota: 5)
        #expect(RecordBytes.set() == set.encoded())
        #expect(try ValueReader.reading(RecordBytes.set(version: 1)) { try SetRecord(decoding: &$0) } == set)
        #expect(RecordBytes.id() == IDRecord(set: 2, guest: 7, data: [0xca, 0xfe]).encoded())
        #expect(try ValueReader.reading(RecordBytes.id()) { try IDRecord.owner(decoding: &$0) } == 2)
        let event = EventRecord(kind: 1, timestamp: 1_700_000_000_000, set: 2, token: "vm", epoch: 1, id: 3)
        #expect(RecordBytes.event() == event.encoded())
        #expect(try ValueReader.reading(RecordBytes.event(version: 1)) { try EventRecord(decoding: &$0) } == event)
        #expect(try ValueReader.reading(RecordBytes.event()) { try EventRecord.kindAndSet(decoding: &$0) } == (1, 2))
        var subscriber = SubscriberRecord(acknowledgedThrough: 9, sets: [2, 3], kindMask: 0x000f)
        #expect(try ValueReader.reading(RecordBytes.subscriber(version: 1)) { try SubscriberRecord(decoding: &$0) } == subscriber)
        subscriber.after = ["a"]
        #expect(RecordBytes.subscriber() == subscriber.encoded())
        for decoder in RecordDecoder.allCases {
            #expect(throws: Never.self, "\(decoder)") { try decoder.decode(RecordBytesBase.valid(decoder)) }
        }
    }

    @Test("A malformed record is refused with DecodingFailure, not read past its end", arguments: MalformedRecord.all)
    func malformedRecord(_ malformed: MalformedRecord) {
        #expect(throws: DecodingFailure.self) { try malformed.decoder.decode(malformed.bytes) }
    }

    @Test("Hex digits decode in either case and from any collection; anything else is nil")
    func hex() throws {
        #expect(Hex.decode("CAFE") == [0xca, 0xfe])
        #expect(Hex.decode("cAfE") == [0xca, 0xfe])
        // A collection without contiguous storage takes the copying path.
        #expect(Hex.decode(Array("efac".utf8).reversed()) == [0xca, 0xfe])
        #expect(Hex.decode(Array("efa".utf8).reversed()) == nil)
        #expect(Hex.decode("caf") == nil)
        #expect(Hex.decode("cage") == nil)
        #expect(Hex.decode("ca:e") == nil)
        let uuid = try #require(UUIDBytes.parse("01234567-89ab-cdef-0123-456789abcdef"))
        #expect(UUIDBytes.parse("01234567-89AB-CDEF-0123-456789ABCDEF") == uuid)
    }

    @Test("Keys are their tag and big-endian number, byte for byte")
    func keys() {
        #expect(StoreLayout.setKey(0x0102_0304) == [0x01, 0x01, 0x02, 0x03, 0x04])
        #expect(StoreLayout.extentKey(last: 0xfedc_ba98) == [0x02, 0xfe, 0xdc, 0xba, 0x98])
        #expect(StoreLayout.idKey(0x0a0b_0c0d) == [0x0a, 0x0b, 0x0c, 0x0d])
        #expect(StoreLayout.guestKey(set: 7, guest: 0x0100_0000) == [0, 0, 0, 7, 1, 0, 0, 0])
    }
}

/// The valid record each decoder's malformed cases start from.
private enum RecordBytesBase {
    static func valid(_ decoder: RecordDecoder) -> [UInt8] {
        switch decoder {
        case .set: RecordBytes.set()
        case .id, .idOwner: RecordBytes.id()
        case .event, .eventKindAndSet: RecordBytes.event()
        case .subscriber: RecordBytes.subscriber()
        }
    }
}

// MARK: Migrations

@Suite("Migration history failures")
struct MigrationHistoryTests {
    @Test("A store with databases but no history is damage, not an old schema")
    func databasesWithoutHistory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let env = try Environment.open(path: dir.child("store"))
        #expect(try Migrator.pendingMigrations(in: env).count == Migrations.all.count, "a new environment needs every migration")
        try env.write { txn in try txn.createDatabase(named: StoreLayout.DB.meta.rawValue) }
        #expect(throws: MigrationError.corruptHistory("the store has databases but no migration history")) {
            _ = try Migrator.pendingMigrations(in: env)
        }
        #expect(throws: MigrationError.corruptHistory("the store has databases but no migration history")) {
            try Migrator.migrate(env, now: { 0 })
        }
        #expect(try Migrator.appliedVersions(in: env) == [])
    }

    @Test("An up-to-date store is only read; a history that is not a prefix of the known migrations is refused")
    func historyChecks() throws {
        try withStore { store in
            let env = try Environment.open(path: store.path)
            #expect(try Migrator.migrate(env, now: { 0 }).isEmpty)
            // Code that knows no migrations at all: every recorded one is newer.
            #expect(throws: MigrationError.newerSchema(storeVersion: 5, supportedVersion: 0)) {
                _ = try Migrator.pendingMigrations(in: env, migrations: [])
            }
            // Code whose list starts at 2: the recorded 1, 2, … is not a prefix of 2, 3, ….
            let known = Array(Migrations.all.dropFirst())
            #expect(throws: MigrationError.corruptHistory("recorded [1, 2, 3, 4, 5], expected a prefix of [2, 3, 4, 5]")) {
                _ = try Migrator.pendingMigrations(in: env, migrations: known)
            }
            #expect(throws: MigrationError.corruptHistory("recorded [1, 2, 3, 4, 5], expected a prefix of [2, 3, 4, 5]")) {
                try Migrator.migrate(env, migrations: known, now: { 0 })
            }
            #expect(try Migrator.appliedVersions(in: env) == [1, 2, 3, 4, 5])
        }
    }

    @Test("Migration 4 refuses a schema-3 free extent whose value is not 4 bytes, and nothing is applied")
    func migration4BadExtent() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let env = try Environment.open(path: dir.child("store"))
        #expect(try Migrator.migrate(env, migrations: Array(Migrations.all.prefix(3)), now: { 0 }).count == 3)
        let control = try env.openDatabase(named: StoreLayout.DB.control.rawValue)
        // Schema 3 keys an extent by its first ID and stores its last as 4 bytes: 3 bytes is damage.
        try env.write { txn in _ = try txn.put([0, 0, 9], forKey: [StoreLayout.ControlTag.free, 0, 0, 0, 5], in: control) }
        #expect(throws: LMDBError.corrupted) { try Migrator.migrate(env, now: { 0 }) }
        #expect(try Migrator.appliedVersions(in: env) == [1, 2, 3])
        // The same extent with a 4-byte value migrates.
        try env.write { txn in _ = try txn.put([0, 0, 0, 9], forKey: [StoreLayout.ControlTag.free, 0, 0, 0, 5], in: control) }
        #expect(try Migrator.migrate(env, now: { 0 }).map(\.number) == [4, 5])
    }
}

// MARK: Exports

/// An export written by hand: a valid header, one ID line and a trailer whose
/// checksum is wrong, so that a case that gets past every other check is
/// refused with `exportChecksumMismatch` (and one refused otherwise failed earlier).
private enum HandExport {
    static let header = #"{"count":1,"createdAt":1700000000000,"exportID":"01234567-89ab-cdef-0123-456789abcdef","format":"ioasid-set-export","quota":5,"set":2,"sourceStore":"00ff","token":"vm:x","version":1}"#
    static let line = #"{"id":7}"#
    static let trailer = #"{"count":1,"end":true,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}"#

    static func bytes(header: String = header, lines: [String] = [line], trailer: String = trailer, final: String = "\n") -> [UInt8] {
        Array(([header] + lines + [trailer]).joined(separator: "\n").utf8) + Array(final.utf8)
    }

    /// The header with `old` replaced by `new`.
    static func header(_ old: String, _ new: String) -> String {
        precondition(header.contains(old), "\(old) is not in the header")
        return header.replacingOccurrences(of: old, with: new)
    }

    /// The export with the bytes of `old` in the header replaced by `new` (for bytes that are not UTF-8).
    static func bytes(replacingInHeader old: String, with new: [UInt8]) -> [UInt8] {
        let whole = bytes()
        let target = Array(old.utf8)
        let at = whole.indices.first { whole[$0...].starts(with: target) }!
        return Array(whole[..<at]) + new + Array(whole[(at + target.count)...])
    }
}

struct MalformedExport: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let code: IOASIDError.Code

    var testDescription: String { name }

    static let all: [MalformedExport] = [
        // Accepted up to the (deliberately wrong) checksum: blanks, escapes.
        .init(name: "the unchanged hand-written export", bytes: HandExport.bytes(), code: .exportChecksumMismatch),
        .init(
            name: "tabs and spaces between tokens",
            bytes: HandExport.bytes(header: "{\t" + HandExport.header.dropFirst().replacingOccurrences(of: ",", with: " ,\t"), lines: ["{ \"id\" :\t7 }\t"]),
            code: .exportChecksumMismatch
        ),
        .init(name: "a token with escapes", bytes: HandExport.bytes(header: HandExport.header("\"vm:x\"", #""vm:\"a\\b\/c""#)), code: .exportChecksumMismatch),
        .init(name: "an upper-case export ID", bytes: HandExport.bytes(header: HandExport.header("89ab-cdef", "89AB-CDEF")), code: .exportChecksumMismatch),
        // The header.
        .init(name: "an empty object as the header", bytes: HandExport.bytes(header: "{ }"), code: .exportMalformed),
        .init(name: "a quota with a fraction", bytes: HandExport.bytes(header: HandExport.header("\"quota\":5", "\"quota\":5.0")), code: .exportMalformed),
        .init(name: "a quota with an exponent (e)", bytes: HandExport.bytes(header: HandExport.header("\"quota\":5", "\"quota\":5e0")), code: .exportMalformed),
        .init(name: "a quota with an exponent (E)", bytes: HandExport.bytes(header: HandExport.header("\"quota\":5", "\"quota\":5E0")), code: .exportMalformed),
        .init(name: "a quota beyond 64 bits", bytes: HandExport.bytes(header: HandExport.header("\"quota\":5", "\"quota\":123456789012345678901234567890")), code: .exportMalformed),
        .init(name: "a quota beyond 32 bits", bytes: HandExport.bytes(header: HandExport.header("\"quota\":5", "\"quota\":4294967296")), code: .exportMalformed),
        .init(name: "a quota that is a string", bytes: HandExport.bytes(header: HandExport.header("\"quota\":5", "\"quota\":\"5\"")), code: .exportMalformed),
        .init(name: "a token that is false", bytes: HandExport.bytes(header: HandExport.header("\"vm:x\"", "false")), code: .exportMalformed),
        .init(name: "a token that is not UTF-8", bytes: HandExport.bytes(replacingInHeader: "vm:x", with: [0x76, 0xff]), code: .exportMalformed),
        .init(name: "an export ID that is not a UUID", bytes: HandExport.bytes(header: HandExport.header("89ab-cdef", "89ab_cdef")), code: .exportMalformed),
        .init(name: "a source store ID whose escape decodes to a non-hex digit", bytes: HandExport.bytes(header: HandExport.header("\"00ff\"", #""00\/f""#)), code: .exportMalformed),
        .init(name: "a duplicate key", bytes: HandExport.bytes(header: HandExport.header("\"quota\":5", "\"quota\":5,\"quota\":5")), code: .exportMalformed),
        .init(name: "a key that is not UTF-8", bytes: HandExport.bytes(replacingInHeader: "\"set\"", with: [0x22, 0xff, 0x22]), code: .exportMalformed),
        .init(name: "a header without a version", bytes: HandExport.bytes(header: HandExport.header(",\"version\":1", "")), code: .exportUnsupported),
        .init(name: "a version that is a string", bytes: HandExport.bytes(header: HandExport.header("\"version\":1", "\"version\":\"1\"")), code: .exportUnsupported),
        .init(name: "a version that is true", bytes: HandExport.bytes(header: HandExport.header("\"version\":1", "\"version\":true")), code: .exportUnsupported),
        // ID lines.
        .init(name: "an ID line without an id", bytes: HandExport.bytes(lines: [#"{"guest":5}"#]), code: .exportMalformed),
        .init(name: "an ID with a fraction", bytes: HandExport.bytes(lines: [#"{"id":7.5}"#]), code: .exportMalformed),
        .init(name: "an ID with an exponent", bytes: HandExport.bytes(lines: [#"{"id":7e0}"#]), code: .exportMalformed),
        .init(name: "an empty object as an ID line", bytes: HandExport.bytes(lines: ["{}"]), code: .exportMalformed),
        // The end.
        .init(name: "a trailer with end false", bytes: HandExport.bytes(trailer: HandExport.trailer.replacingOccurrences(of: "true", with: "false")), code: .exportMalformed),
        .init(name: "a last line without a newline that is no trailer", bytes: HandExport.bytes(trailer: #"{"count":1}"#, final: ""), code: .exportTruncated),
        .init(name: "a trailer without its newline", bytes: HandExport.bytes(final: ""), code: .exportTruncated),
        .init(name: "an empty export", bytes: [], code: .exportTruncated),
    ]
}

@Suite("Export parsing failures")
struct ExportParsingTests {
    @Test("A malformed export is refused with its code by validation and by import, and the import changes nothing", arguments: MalformedExport.all)
    func malformedExport(_ malformed: MalformedExport) throws {
        expectError(malformed.code) { try ExportFormat.validate(malformed.bytes) }
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try MigrationTests.Fixture.destination(in: dir)
        let file = dir.child("export.jsonl")
        try Data(malformed.bytes).write(to: URL(fileURLWithPath: file))
        let before = try store.rawDump()
        expectError(malformed.code) { try store.importSet(from: file) }
        #expect(try store.rawDump() == before)
    }
}

// MARK: Imports of real exports

@Suite("Import failures")
struct ImportFailureTests {
    /// The live-migration suite's export of three IDs and its destination.
    typealias Fixture = MigrationTests.Fixture

    @Test("A trailer whose count differs from the lines is refused (its checksum still matches)")
    func trailerCount() throws {
        let f = try Fixture()
        defer { f.dir.cleanup() }
        let text = String(decoding: f.bytes, as: UTF8.self)
        let changed = Data(text.replacingOccurrences(of: #"{"count":3,"end":true"#, with: #"{"count":2,"end":true"#).utf8)
        #expect(changed != f.bytes)
        let file = try f.write(changed)
        let before = try f.destination.rawDump()
        expectError(.exportMalformed) { try f.destination.importSet(from: file) }
        #expect(try f.destination.rawDump() == before)
        #expect(try f.destination.importSet(from: f.path).imported == 3, "the unchanged export imports")
    }

    @Test("Data that arrives after the trailer has been read and checked is refused")
    func dataAfterTrailerLater() throws {
        let f = try Fixture()
        defer { f.dir.cleanup() }
        let fifo = f.dir.child("export.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        // Hold the write end (O_RDWR opens a FIFO without waiting for a reader) and
        // write the whole export; the importer reads it, checks the trailer, and
        // only then (in its progress report) does one more byte arrive.
        let writer = open(fifo, O_RDWR | O_CLOEXEC)
        #expect(writer >= 0)
        #expect(f.bytes.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) } == f.bytes.count)
        var writerOpen = true
        let before = try f.destination.rawDump()
        expectError(.exportMalformed) {
            try f.destination.importSet(from: .file(fifo)) { phase, done, total in
                guard writerOpen, phase == .validating, done == total else { return }
                #expect(write(writer, "x", 1) == 1)
                close(writer)
                writerOpen = false
            }
        }
        if writerOpen { close(writer) }
        #expect(!writerOpen, "the trailer was checked before the extra byte")
        #expect(try f.destination.rawDump() == before)
    }

    @Test("A free index that has lost its extents is reported as a damaged store, and the import changes nothing")
    func freeIndexLost() throws {
        let f = try Fixture()
        defer { f.dir.cleanup() }
        let env = try Environment.open(path: f.destination.path)
        let control = try env.openDatabase(named: StoreLayout.DB.control.rawValue)
        try env.write { txn in
            var extents: [[UInt8]] = []
            try txn.withCursor(on: control) { cursor in
                try cursor.forEach(from: [StoreLayout.ControlTag.free]) { entry in
                    let key = entry.keyBytes()
                    if key.first == StoreLayout.ControlTag.free { extents.append(key) }
                    return true
                }
            }
            #expect(!extents.isEmpty)
            for key in extents { _ = try txn.delete(key, in: control) }
        }
        let before = try f.destination.rawDump()
        expectError(.corruptStore) { try f.destination.importSet(from: f.path) }
        #expect(try f.destination.rawDump() == before)
    }

    @Test("A spill file damaged between validation and import is refused, and the import changes nothing",
          .enabled(if: FileManager.default.fileExists(atPath: "/proc/self/fd"), "finds the spill file through /proc/self/fd"),
          arguments: ["truncated", "overwritten"])
    func damagedSpool(_ damage: String) throws {
        let f = try Fixture()
        defer { f.dir.cleanup() }
        let file = f.path
        let directory = URL(fileURLWithPath: f.destination.path).resolvingSymlinksInPath().path + "/"
        let before = try f.destination.rawDump()
        var damaged = false
        ImportSpool.$memoryLimitForTests.withValue(1) {
            expectError(.storageFailure) {
                try f.destination.importSet(from: .file(file)) { phase, done, total in
                    guard !damaged, phase == .validating, done == total else { return }
                    // The spill file: nameless (or unlinked) in the store's directory.
                    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
                    let spool = fds.compactMap { fd -> Int32? in
                        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd),
                              target.hasPrefix(directory), target.hasSuffix("(deleted)") else { return nil }
                        return Int32(fd)
                    }
                    guard spool.count == 1, let fd = spool.first else {
                        Issue.record("expected one spill file in \(directory), found \(spool.count)")
                        return
                    }
                    if damage == "truncated" {
                        #expect(ftruncate(fd, 0) == 0)
                    } else {
                        // The first entry (u32 ID 1, u8 1, u32 guest 101): its data length becomes 2³² − 1.
                        let length: [UInt8] = [0xff, 0xff, 0xff, 0xff]
                        #expect(length.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4, 9) } == 4)
                    }
                    damaged = true
                }
            }
        }
        #expect(damaged)
        #expect(try f.destination.rawDump() == before)
    }
}
