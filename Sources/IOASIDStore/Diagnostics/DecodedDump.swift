import IOASIDMigrations
import LMDB

/// One record of the store, decoded for a person reading a support dump
/// (`ioasid dump`). Damaged records are reported, never skipped or fatal.
public struct DumpRecord: Sendable, Equatable {
    /// A decoded value.
    public enum Value: Sendable, Equatable {
        /// An unsigned number (IDs, counts, sequence numbers).
        case number(UInt64)
        /// Text (tokens, names, kinds, states).
        case text(String)
        /// A yes/no flag.
        case flag(Bool)
        /// Opaque bytes (private data, identifiers).
        case bytes([UInt8])
        /// A list of numbers (a subscriber's sets).
        case numbers([UInt64])
        /// A time, in milliseconds since 1970.
        case time(UInt64)
    }

    /// One named field of a record.
    public struct Field: Sendable, Equatable {
        /// The field's name (camelCase, as in the CLI's JSON).
        public let name: String
        /// Its value.
        public let value: Value
    }

    /// The database holding the record (a name of <doc:StorageLayout>: `ids`, `control`, …).
    public let database: String
    /// The key, decoded (`capacity`, `set 2`, `extent 5…9`, `42`, `42 kvm`, …).
    public let key: String
    /// The payload's fields, decoded; empty when ``problem`` is set.
    public let fields: [Field]
    /// What is wrong with the record (`checksum mismatch`, `does not decode`), if anything.
    public let problem: String?
    /// The raw key.
    public let rawKey: [UInt8]
    /// The raw value, seal included.
    public let rawValue: [UInt8]
}

extension IOASIDStore {
    /// Calls `body` with every record of every database of the store, decoded,
    /// database by database in key order, from one consistent snapshot; then
    /// one record per applied migration (database `migrations`).
    ///
    /// A record whose seal does not match, or whose payload does not decode, is
    /// reported with a ``DumpRecord/problem`` and its raw bytes: a dump is for
    /// diagnosing a store, damaged or not.
    ///
    /// - Throws: ``IOASIDError`` — `storageFailure`, `corruptStore` when a
    ///   database cannot be read at all; whatever `body` throws.
    public func dump(_ body: (DumpRecord) throws(IOASIDError) -> Void) throws(IOASIDError) {
        let databases = schema.all
        try readMapped { tx in
            for db in databases {
                try tx.txn.withCursor(on: db) { cursor in
                    var entry = try cursor.first()
                    while let e = entry {
                        try body(DumpDecoder.decode(database: db.name, key: e.key, value: e.value))
                        entry = try cursor.next()
                    }
                }
            }
        }
        let versions = try IOASIDError.mapping { try Migrator.appliedVersions(in: env) }
        for version in versions {
            try body(DumpRecord(
                database: StoreLayout.historyDatabase, key: String(version), fields: [], problem: nil,
                rawKey: StoreLayout.migrationKey(version), rawValue: []
            ))
        }
    }
}

/// Decodes sealed records for ``IOASIDStore/dump(_:)``.
enum DumpDecoder {
    typealias Field = DumpRecord.Field

    static func decode(database: String, key: [UInt8], value: [UInt8]) -> DumpRecord {
        let name = keyText(database: database, key: key)
        guard value.count >= Sealing.trailerSize else {
            return DumpRecord(database: database, key: name, fields: [], problem: "shorter than its seal", rawKey: key, rawValue: value)
        }
        let payload = Array(value.dropLast(Sealing.trailerSize))
        guard Sealing.seal(payload, key: key) == value else {
            return DumpRecord(database: database, key: name, fields: [], problem: "checksum mismatch", rawKey: key, rawValue: value)
        }
        do {
            let fields = try ValueReader.reading(payload) { r in try decodeFields(database: database, key: key, &r) }
            return DumpRecord(database: database, key: name, fields: fields, problem: nil, rawKey: key, rawValue: value)
        } catch {
            return DumpRecord(database: database, key: name, fields: [], problem: "does not decode", rawKey: key, rawValue: value)
        }
    }

    static func keyText(database: String, key: [UInt8]) -> String {
        func u32(_ offset: Int) -> String { BigEndian.u32(key, at: offset).map(String.init) ?? Hex.encode(key) }
        func text(_ bytes: ArraySlice<UInt8>) -> String { Names.escaped(String(decoding: bytes, as: UTF8.self)) }
        switch StoreLayout.DB(rawValue: database) {
        case .meta, .tokens, .subscribers: return text(key[...])
        case .ids, .pending: return key.count == 4 ? u32(0) : Hex.encode(key)
        case .events: return key.count == 8 ? (BigEndian.u64(key).map(String.init) ?? Hex.encode(key)) : Hex.encode(key)
        case .control:
            guard key.count == 5 else { return Hex.encode(key) }
            switch key[0] {
            case StoreLayout.ControlTag.set: return "set " + u32(1)
            case StoreLayout.ControlTag.free: return "extent …" + u32(1)
            default: return Hex.encode(key)
            }
        case .holds: return key.count > 4 ? u32(0) + " " + text(key[4...]) : Hex.encode(key)
        case .guests: return key.count == 8 ? "set " + u32(0) + " guest " + u32(4) : Hex.encode(key)
        case .imports: return key.count == 16 ? UUIDBytes.format(key) : Hex.encode(key)
        case nil: return Hex.encode(key)
        }
    }

    static func decodeFields(database: String, key: [UInt8], _ r: inout ValueReader) throws -> [Field] {
        func f(_ name: String, _ value: DumpRecord.Value) -> Field { Field(name: name, value: value) }
        switch StoreLayout.DB(rawValue: database) {
        case .meta:
            let value: DumpRecord.Value
            switch key {
            case StoreLayout.MetaKey.capacity, StoreLayout.MetaKey.nextSetID, StoreLayout.MetaKey.maximumDataSize, StoreLayout.MetaKey.epoch:
                value = .number(UInt64(try r.u32()))
            case StoreLayout.MetaKey.reserved, StoreLayout.MetaKey.nextSequence:
                value = .number(try r.u64())
            case StoreLayout.MetaKey.createdAt:
                value = .time(try r.u64())
            default:
                value = .bytes(try r.bytes(r.remaining))
            }
            try r.end()
            return [f("value", value)]
        case .control:
            if key.first == StoreLayout.ControlTag.free {
                let first = try r.u32()
                try r.end()
                return [f("first", .number(UInt64(first))), f("last", .number(UInt64(BigEndian.u32(key, at: 1) ?? 0)))]
            }
            let set = try SetRecord(decoding: &r)
            var flags: [String] = []
            if set.flags.contains(.system) { flags.append("system") }
            if set.flags.contains(.frozen) { flags.append("frozen") }
            if set.flags.contains(.destroyPending) { flags.append("destroyPending") }
            return [
                f("token", .text(Names.escaped(set.token))), f("quota", .number(UInt64(set.quota))),
                f("held", .number(UInt64(set.count))), f("freePending", .number(UInt64(set.pending))),
                f("flags", .text(flags.joined(separator: ","))),
            ]
        case .tokens:
            let set = try r.u32()
            try r.end()
            return [f("set", .number(UInt64(set)))]
        case .ids:
            let record = try IDRecord(decoding: &r)
            var fields = [f("set", .number(UInt64(record.set))), f("state", .text(record.isFreePending ? "freePending" : "allocated"))]
            if let guest = record.guest { fields.append(f("guest", .number(UInt64(guest)))) }
            if !record.data.isEmpty { fields.append(f("data", .bytes(record.data))) }
            return fields
        case .events:
            let event = try EventRecord(decoding: &r)
            var fields = [
                f("kind", .text(Event.Kind(code: event.kind)?.rawValue ?? "code \(event.kind)")),
                f("time", .time(event.timestamp)), f("epoch", .number(UInt64(event.epoch))),
            ]
            if let set = event.set { fields.append(f("set", .number(UInt64(set)))) }
            if !event.token.isEmpty { fields.append(f("token", .text(Names.escaped(event.token)))) }
            if let capacity = event.capacity { fields.append(f("capacity", .number(UInt64(capacity)))) }
            if let subscriber = event.subscriber { fields.append(f("subscriber", .text(Names.escaped(subscriber)))) }
            if let id = event.id { fields.append(f("id", .number(UInt64(id)))) }
            if let quota = event.quota { fields.append(f("quota", .number(UInt64(quota)))) }
            if let guest = event.guest { fields.append(f("guest", .number(UInt64(guest)))) }
            if let destroy = event.destroy { fields.append(f("destroy", .flag(destroy))) }
            return fields
        case .subscribers:
            let record = try SubscriberRecord(decoding: &r)
            var fields = [f("acknowledgedThrough", .number(record.acknowledgedThrough))]
            if let sets = record.sets { fields.append(f("sets", .numbers(sets.sorted().map(UInt64.init)))) }
            if let mask = record.kindMask {
                let kinds = Event.Kind.allCases.filter { mask & (1 << UInt16($0.code)) != 0 }.map(\.rawValue)
                fields.append(f("kinds", .text(kinds.joined(separator: ","))))
            }
            return fields
        case .holds:
            try r.end()
            return []
        case .pending:
            let sequence = try r.u64()
            try r.end()
            return [f("freeSequence", .number(sequence))]
        case .guests:
            let host = try r.u32()
            try r.end()
            return [f("id", .number(UInt64(host)))]
        case .imports:
            let record = try ImportRecord(decoding: &r)
            return [f("set", .number(UInt64(record.set))), f("time", .time(record.importedAt))]
        case nil:
            return [f("value", .bytes(try r.bytes(r.remaining)))]
        }
    }
}
