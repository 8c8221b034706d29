import Crypto
import Foundation
import LMDB

extension IOASIDStore {
    /// Imports an export (see ``ExportFormat``) as a new set, atomically.
    ///
    /// First the whole file is validated — format and version, every line,
    /// the count and the SHA-256 — without touching the store. Then one write
    /// transaction creates the set (reserving its quota), keeps each host ID
    /// where it is free here and remaps it to the lowest free ID where it is
    /// not, preserves every guest ID and datum, records the export ID, and
    /// commits SET_CREATE, ALLOC and BIND events. Any refusal leaves the store
    /// unchanged.
    ///
    /// - Parameters:
    ///   - path: the export file (stream standard input to a file first).
    ///   - token: the new set's owner token; default the exported one.
    ///   - progress: called now and then with (IDs processed, IDs in total).
    /// - Throws: ``IOASIDError`` — `exportChecksumMismatch`, `exportTruncated`,
    ///   `exportUnsupported`, `exportMalformed`, `exportAlreadyImported`,
    ///   `duplicateToken`, `capacityExhausted`, `duplicateGuest`, `cannotPlace`.
    public func importSet(
        from path: String,
        token: String? = nil,
        progress: ((Int, Int) -> Void)? = nil
    ) throws(IOASIDError) -> ImportResult {
        try IOASIDError.mapping {
            let header = try Self.validateExport(at: path, progress: progress)
            guard let exportID = UUID(uuidString: header.exportID) else {
                throw IOASIDError(.exportMalformed, "the export ID is not a UUID")
            }
            let exportKey = withUnsafeBytes(of: exportID.uuid) { Array($0) }
            return try write { tx in
                if let raw = try tx.txn.get(exportKey, in: tx.schema.imports), let set = Key.decodeU32(raw) {
                    throw IOASIDError(.exportAlreadyImported, "export \(header.exportID) was already imported as set \(set)")
                }
                let set = try tx.createSet(token: token ?? header.token, quota: header.quota)
                var record = try tx.setRecord(set)
                let capacity = try tx.capacity()
                var done = 0
                // Pass 1: keep every host ID that is free here.
                try Self.forEachEntry(at: path) { entry in
                    if entry.id < capacity, let slot = try tx.freeSlot(for: entry.id) {
                        if let guest = entry.guest { try tx.checkGuestFree(guest, in: set) }
                        try tx.place(slot, in: set, record: &record, data: entry.data, guest: entry.guest)
                        done += 1
                        if done % 16384 == 0 { progress?(done, header.count) }
                    }
                }
                // Pass 2: remap the rest to the lowest free IDs. (A remap target is never the
                // host ID of another entry: those were either kept in pass 1 or are in use here.)
                var remapped: [Remap] = []
                try Self.forEachEntry(at: path) { entry in
                    if entry.id < capacity, try tx.idRecord(IOASID(entry.id))?.set == set.rawValue { return }
                    if let guest = entry.guest { try tx.checkGuestFree(guest, in: set) }
                    guard let target = try tx.lowestFreeSlot(in: 1, capacity - 1) else {
                        throw IOASIDError(.cannotPlace, "no free ID for exported ID \(entry.id)")
                    }
                    try tx.place(target, in: set, record: &record, data: entry.data, guest: entry.guest)
                    remapped.append(Remap(from: IOASID(entry.id), to: IOASID(target.id), guest: entry.guest))
                    done += 1
                    if done % 16384 == 0 { progress?(done, header.count) }
                }
                guard done == header.count else {
                    throw IOASIDError(.exportMalformed, "the export changed while it was being imported")
                }
                var value = ByteWriter()
                value.u32(set.rawValue)
                value.u64(Self.nowMillis())
                try tx.txn.put(value.bytes, forKey: exportKey, in: tx.schema.imports)
                progress?(done, header.count)
                return ImportResult(
                    set: set, token: record.token, exportID: header.exportID, imported: done, remapped: remapped
                )
            }
        }
    }

    /// Checks a whole export — header, every line, order, count and SHA-256 — and returns its header.
    static func validateExport(at path: String, progress: ((Int, Int) -> Void)? = nil) throws -> ExportHeader {
        var reader = try LineReader(path: path)
        defer { reader.close() }
        return try validateExport(&reader, progress: progress)
    }

    static func validateExport(_ reader: inout LineReader, progress: ((Int, Int) -> Void)?) throws -> ExportHeader {
        guard let (first, firstTerminated) = try reader.next() else {
            throw IOASIDError(.exportTruncated, "the export is empty")
        }
        let header: ExportHeader
        do {
            header = try JSONDecoder().decode(ExportHeader.self, from: Data(first))
        } catch {
            if !firstTerminated { throw IOASIDError(.exportTruncated, "the export ends inside its header") }
            // A header of another format or version may not decode as ours: say which.
            if let any = try? JSONSerialization.jsonObject(with: Data(first)) as? [String: Any],
                let format = any["format"] as? String
            {
                throw IOASIDError(.exportUnsupported, "unsupported export format \(format) version \(any["version"] ?? "?")")
            }
            throw IOASIDError(.exportMalformed, "line 1 is not an export header")
        }
        guard header.format == ExportFormat.name, header.version == ExportFormat.version else {
            throw IOASIDError(
                .exportUnsupported,
                "unsupported export format \(header.format) version \(header.version); this software reads \(ExportFormat.name) version \(ExportFormat.version)"
            )
        }
        guard header.count >= 0, header.count <= Int(header.quota), header.quota > 0 else {
            throw IOASIDError(.exportMalformed, "the header's count \(header.count) does not fit its quota \(header.quota)")
        }
        var hasher = SHA256()
        hasher.update(data: Data(first))
        hasher.update(data: Data([0x0a]))
        var lineNumber = 1
        var count = 0
        var previous: UInt32 = 0
        while let (line, terminated) = try reader.next() {
            lineNumber += 1
            let entry: ExportEntry
            do {
                entry = try ExportEntry(parsing: line)
            } catch {
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
                guard try reader.next() == nil else {
                    throw IOASIDError(.exportMalformed, "data follows the trailer on line \(lineNumber + 1)")
                }
                let actual = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                guard Array(digest) == Array(actual.utf8) else {
                    throw IOASIDError(.exportChecksumMismatch, "the export's SHA-256 does not match its contents")
                }
                guard n == UInt64(count), count == header.count else {
                    throw IOASIDError(.exportMalformed, "the export holds \(count) IDs but says \(n) (header \(header.count))")
                }
                return header
            }
            guard entry.id > previous else {
                throw IOASIDError(.exportMalformed, "line \(lineNumber): IDs must be in ascending order")
            }
            guard terminated else { throw IOASIDError(.exportTruncated, "the export ends inside line \(lineNumber)") }
            previous = entry.id
            count += 1
            guard count <= header.count else {
                throw IOASIDError(.exportMalformed, "the export holds more IDs than its header's \(header.count)")
            }
            hasher.update(data: Data(line))
            hasher.update(data: Data([0x0a]))
            if count % 65536 == 0 { progress?(count, header.count) }
        }
        throw IOASIDError(.exportTruncated, "the export ends without its trailer (after \(count) of \(header.count) IDs)")
    }

    /// Calls `body` for each ID line of an already validated export.
    private static func forEachEntry(at path: String, _ body: (ExportEntry) throws -> Void) throws {
        var reader = try LineReader(path: path)
        defer { reader.close() }
        _ = try reader.next()
        while let (line, _) = try reader.next() {
            guard let entry = try? ExportEntry(parsing: line) else {
                // Only the (already validated) trailer may end the entries.
                guard let fields = try? FlatJSON.parse(line), fields["end"] == .bool(true) else { break }
                return
            }
            try body(entry)
        }
        throw IOASIDError(.exportMalformed, "the export changed while it was being imported")
    }
}
