import IOASIDMigrations
import LMDB

/// Where an export is read from.
public enum ExportSource: Sendable, Equatable {
    /// A file, FIFO or device (`/dev/stdin` works too).
    case file(String)
    /// The process's standard input.
    case standardInput
}

/// The two phases of an import, for progress reports.
public enum ImportPhase: String, Sendable {
    /// Reading and checking the export (no transaction is open).
    case validating
    /// Applying it in one write transaction.
    case importing
}

extension IOASIDStore {
    /// Imports an export (see ``ExportFormat``) as a new set, atomically.
    ///
    /// The input is read **exactly once**, in one linear pass: each line is
    /// parsed and checked as it arrives (a guest ID named twice is found once
    /// every line is in), the bytes are hashed a chunk at a time, and each
    /// entry is kept in a spool (in memory,
    /// or beyond 32 MiB in an unnamed private file in the store's directory),
    /// so a file, a FIFO or standard input all work, and what was checked is
    /// what is applied. No transaction is open while the input is read, so a
    /// slow producer stalls nobody else. Only once the trailer's SHA-256 has
    /// been verified does one write transaction create the set (reserving its
    /// quota), keep each host ID where it is free here and remap it to the
    /// lowest free ID where it is not, preserve every guest ID and datum,
    /// record the export ID, and commit SET_CREATE, ALLOC and BIND events. Any
    /// refusal leaves the store unchanged.
    ///
    /// - Parameters:
    ///   - source: where to read the export.
    ///   - token: the new set's owner token; default the exported one.
    ///   - progress: called now and then with the phase, IDs done and IDs in total.
    /// - Throws: ``IOASIDError`` — `exportChecksumMismatch`, `exportTruncated`,
    ///   `exportUnsupported`, `exportMalformed` (including a line longer than
    ///   ``ExportFormat/maximumLineLength`` or data beyond the store's limit),
    ///   `exportAlreadyImported`, `duplicateToken`, `capacityExhausted`,
    ///   `invalidArgument` (an input that cannot be read, a bad token), `storageFailure`.
    public func importSet(
        from source: ExportSource,
        token: String? = nil,
        progress: ((ImportPhase, Int, Int) -> Void)? = nil
    ) throws(IOASIDError) -> ImportResult {
        try checkWritable()
        if let token { try Names.check(token, as: "token") }
        let limit = try readMapped { try $0.maximumDataSize() }
        let spool = ImportSpool(directory: path)
        let header: ExportHeader
        switch source {
        case .standardInput:
            header = try Self.validate(SystemFile.standardInput, named: "standard input", limit: limit, into: spool, progress: progress)
        case .file(let file):
            let opened: SystemFile
            do { opened = try SystemFile.openForReading(file) } catch {
                throw IOASIDError(.invalidArgument, "cannot open \(file): \(error.message)", cause: error)
            }
            header = try Self.validate(opened, named: file, limit: limit, into: spool, progress: progress)
        }
        return try writeMapped { tx in try tx.applyImport(header, spool: spool, token: token, progress: progress) }
    }

    /// Reads `input` once, validating it and spooling its entries.
    private static func validate(
        _ input: borrowing SystemFile, named name: String, limit: Int, into spool: ImportSpool,
        progress: ((ImportPhase, Int, Int) -> Void)?
    ) throws(IOASIDError) -> ExportHeader {
        var validator = ExportValidator(maximumDataSize: limit)
        let descriptor = input.descriptor
        return try validator.run(
            read: { buffer, count throws(IOASIDError) in
                try SystemFile.read(descriptor: descriptor, into: &buffer, upTo: count, named: name)
            },
            entry: { entry throws(IOASIDError) in try spool.append(entry) },
            progress: progress.map { report in { report(.validating, $0, $1) } }
        )
    }

    /// Imports the export in the file at `path`; see ``importSet(from:token:progress:)-(ExportSource,_,_)``.
    public func importSet(from path: String, token: String? = nil) throws(IOASIDError) -> ImportResult {
        try importSet(from: .file(path), token: token, progress: nil)
    }
}

extension WriteTransaction {
    /// Applies a validated, spooled export as a new set.
    fileprivate func applyImport(
        _ header: ExportHeader, spool: ImportSpool, token: String?, progress: ((ImportPhase, Int, Int) -> Void)?
    ) throws -> ImportResult {
        try operation {
            guard let exportKey = UUIDBytes.parse(header.exportID) else {
                throw IOASIDError(.exportMalformed, "the export ID is not a UUID")
            }
            if let previous = try record(exportKey, in: schema.imports, { try ImportRecord(decoding: &$0) }) {
                throw IOASIDError(.exportAlreadyImported, "export \(header.exportID) was already imported as set \(previous.set)")
            }
            // The header's token was accepted by the source store (perhaps before the rule for
            // misleading characters); a token given for the import is new and checked in full.
            let set = try createSet(token: token ?? header.token, quota: header.quota, tokenMayPredateRule: token == nil)
            var record = try setRecord(set)
            let capacity = try capacity()
            var done = 0
            func placed() {
                done += 1
                if done % 16384 == 0 { progress?(.importing, done, header.count) }
            }
            // Pass 1: keep every host ID that is free here, walking the free index once
            // alongside the spool (both ascending), and place each as it is found.
            let kept = try keepFreeIDs(spool: spool, below: capacity) { entry in
                try place(IOASID(entry.id), in: set, record: &record, data: entry.data, guest: entry.guest)
                placed()
            }
            // Pass 2, when some host IDs are in use here: remap the rest to the lowest free IDs,
            // in runs. (A remap target is never the host ID of another entry: those were kept
            // in pass 1 or are in use here.)
            var remapped: [Remap] = []
            if kept.count < header.count {
                var targets = try takeLowestFree(count: header.count - kept.count)
                var keptInPass1 = AscendingMembership(kept)
                try spool.forEach { entry in
                    guard !keptInPass1.contains(entry.id) else { return }
                    guard let target = targets.next() else {
                        throw IOASIDError(.corruptStore, "the free index holds fewer free IDs than the unreserved capacity promises")
                    }
                    try place(IOASID(target), in: set, record: &record, data: entry.data, guest: entry.guest)
                    remapped.append(Remap(from: IOASID(entry.id), to: IOASID(target), guest: entry.guest))
                    placed()
                }
            }
            guard done == header.count else {
                throw IOASIDError(.corruptStore, "the import spool holds \(done) IDs, not \(header.count)")
            }
            putSet(record, set)
            try put(ImportRecord(set: set.rawValue, importedAt: IOASIDStore.nowMillis()).encoded(), exportKey, in: schema.imports)
            progress?(.importing, done, header.count)
            return ImportResult(set: set, token: record.token, exportID: header.exportID, imported: done, remapped: remapped)
        }
    }

    /// Finds which of the spooled IDs are free here (one walk of the free
    /// index alongside the ascending IDs), hands each to `keep` as it is found,
    /// and takes them from the free index, one rewrite per extent. Returns them
    /// in ascending order.
    private func keepFreeIDs(spool: ImportSpool, below capacity: UInt32, keep: (ExportEntry) throws -> Void) throws -> [UInt32] {
        try flushPendingExtent()
        var kept: [UInt32] = []
        // Each extent that gave IDs, and where its IDs end in `kept` (they start where the previous run's end).
        var runs: [(extent: ClosedRange<UInt32>, end: Int)] = []
        try txn.withCursor(on: schema.control) { cursor in
            var current: ClosedRange<UInt32>?
            var exhausted = false
            try spool.forEach { entry in
                guard !exhausted, entry.id < capacity else { return }
                if current.map({ $0.upperBound < entry.id }) ?? true {
                    // Seek forward to the first extent ending at or after this ID.
                    let found: ClosedRange<UInt32>?? = try cursor.withEntry(atOrAfter: StoreLayout.extentKey(last: entry.id)) { try Self.extent($0) }
                    guard let next = found ?? nil else {
                        exhausted = true
                        return
                    }
                    current = next
                }
                guard let extent = current, extent.contains(entry.id) else { return }
                try keep(entry)
                kept.append(entry.id)
                if runs.last?.extent == extent {
                    runs[runs.count - 1].end = kept.count
                } else {
                    runs.append((extent, kept.count))
                }
            }
        }
        var start = 0
        for run in runs {
            // What is left of the extent once the kept IDs are out: the gaps between them.
            let ids = kept[start..<run.end]
            try remove(StoreLayout.extentKey(last: run.extent.upperBound), in: schema.control)
            var first = run.extent.lowerBound
            for id in ids {
                if id > first { try putExtent(first: first, last: id - 1) }
                first = id + 1
            }
            if let last = ids.last, last < run.extent.upperBound { try putExtent(first: last + 1, last: run.extent.upperBound) }
            start = run.end
        }
        return kept
    }

    /// Takes the `count` lowest free IDs from the free index, a whole extent
    /// or a prefix of one at a time, and returns them in ascending order.
    private func takeLowestFree(count: Int) throws -> IndexingIterator<[UInt32]> {
        var ids: [UInt32] = []
        ids.reserveCapacity(count)
        while ids.count < count {
            guard let slot = try lowestFreeSlot(in: 1, .max) else { break }
            let wanted = UInt32(min(UInt64(count - ids.count), UInt64(slot.extent.upperBound - slot.extent.lowerBound) + 1))
            let run = slot.extent.lowerBound...(slot.extent.lowerBound + wanted - 1)
            try takeFreePrefix(through: run.upperBound, of: slot)
            ids.append(contentsOf: run)
        }
        return ids.makeIterator()
    }
}

/// Membership in an ascending list for queries made in ascending order: one
/// merge-like pass over the list, no hashing.
private struct AscendingMembership {
    private let ids: [UInt32]
    private var index = 0

    init(_ ascending: [UInt32]) { ids = ascending }

    /// Whether `id` is in the list; `id` must not be below an earlier query's.
    mutating func contains(_ id: UInt32) -> Bool {
        while index < ids.count, ids[index] < id { index += 1 }
        return index < ids.count && ids[index] == id
    }
}

/// The unnamed file an import spool spills into.
private final class SpillFile {
    let handle: SystemFile
    init(_ handle: consuming SystemFile) { self.handle = handle }
}

/// The checked entries of an export between validation and import: in memory
/// up to 32 MiB, then in an unnamed private file (`0600`, unlinked at once) in
/// the store's directory. Only this process can read it back, so what is
/// applied is exactly what was checked.
package final class ImportSpool {
    private let directory: String
    /// Entries not spilled yet (appended to once per entry, never while it is read: no dynamic exclusivity check).
    @exclusivity(unchecked) private var buffer: [UInt8] = []
    private var file: SpillFile?
    private var spilled: Int64 = 0
    private static let memoryLimit = 32 << 20
    /// A smaller memory budget for tests of the spill path (task-local, so tests side by side keep theirs).
    @TaskLocal package static var memoryLimitForTests: Int?

    /// The memory budget, read once (a task-local lookup per entry would cost more than the entry).
    private let limit: Int

    init(directory: String) {
        self.directory = directory
        limit = Self.memoryLimitForTests ?? Self.memoryLimit
    }

    /// Keeps one checked entry.
    func append(_ entry: ExportEntry) throws(IOASIDError) {
        entry.spooled(into: &buffer)
        if buffer.count >= limit || (file != nil && buffer.count >= min(limit, 1 << 20)) { try spill() }
    }

    private func spill() throws(IOASIDError) {
        do {
            if file == nil { file = SpillFile(try SystemFile.createAnonymous(in: directory)) }
            try file?.handle.writeAll(buffer)
        } catch {
            throw IOASIDError(
                .storageFailure,
                "cannot spool the import in \(directory): \(error == .noSpace ? "the disk is full" : error.message)", cause: error
            )
        }
        spilled += Int64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with every entry, in the order they were appended.
    func forEach(_ body: (ExportEntry) throws -> Void) throws {
        if let spill = file {
            try spill.handle.seek(to: 0)
            var chunk: [UInt8] = []
            var remaining = spilled
            while remaining > 0 {
                let n = try spill.handle.read(into: &chunk, upTo: Int(min(remaining, 1 << 20)))
                guard n > 0 else { throw IOASIDError(.storageFailure, "the import spool ended early") }
                remaining -= Int64(n)
                // The last chunk is decoded with `final`, which refuses bytes left over.
                let used = try chunk.withUnsafeBytes { try Self.decode($0, final: remaining == 0, body) }
                chunk.removeFirst(used)
            }
        }
        _ = try buffer.withUnsafeBytes { try Self.decode($0, final: true, body) }
    }

    /// Decodes whole entries from `bytes`; returns how many bytes they used.
    private static func decode(_ bytes: UnsafeRawBufferPointer, final: Bool, _ body: (ExportEntry) throws -> Void) throws -> Int {
        var offset = 0
        while let (entry, next) = ExportEntry.unspooled(bytes, at: offset) {
            try body(entry)
            offset = next
        }
        if final, offset != bytes.count { throw IOASIDError(.storageFailure, "the import spool ends inside an entry") }
        return offset
    }
}

extension SystemFile {
    /// Reads from an open descriptor, reporting a failure as an unreadable input.
    static func read(descriptor: Int32, into buffer: inout [UInt8], upTo count: Int, named name: String) throws(IOASIDError) -> Int {
        do {
            return try SystemFile.borrowing(descriptor).read(into: &buffer, upTo: count)
        } catch {
            throw IOASIDError(.invalidArgument, "cannot read \(name): \(error.message)", cause: error)
        }
    }
}
