// ioasid-fuzz-import: a libFuzzer target for everything that reads an export.
//
// Each input is an export (JSON Lines). It goes to `ExportFormat.validate`; an input
// refused for its checksum is re-sealed (the failing trailer's SHA-256 replaced by
// the real one) and validated again, so that mutations reach the checks behind the hash.
// An input that validates is imported with `importSet` into a scratch store that
// already holds IDs (kept, free-pending, frozen, an earlier import), so both the
// keep and the remap paths run. After every import the store is put back into its
// pristine state, so each input meets the same store and every crash reproduces.
//
// Rules (a broken one aborts, which libFuzzer reports as a crash):
// - validation refuses only with exportChecksumMismatch, exportTruncated,
//   exportUnsupported or exportMalformed; a re-sealed input never mismatches again;
// - an input validation refuses is refused by importSet with the same code
//   (checked for one input in 64, chosen by content) and changes nothing;
// - an import of a valid input either succeeds or is refused by a rule
//   (exportAlreadyImported, duplicateToken, capacityExhausted, cannotPlace) and
//   then leaves `rawDump()` exactly as it was;
// - an accepted import verifies clean, holds every ID of the export with its guest
//   ID and data, keeps every host ID that was free and moves the others to the
//   lowest free IDs, in order.
//
// Built by Tools/fuzz with `-DLIBFUZZER --sanitize=fuzzer --sanitize=address`, the
// binary is a libFuzzer fuzzer (libFuzzer supplies `main`). Built plainly (as
// `swift build` does), it is a replayer instead:
//   ioasid-fuzz-import FILE|DIR...        runs each input through the same checks
//   ioasid-fuzz-import --make-seeds DIR   writes valid exports to seed a corpus

import Crypto
import Foundation
import IOASIDStore
import LMDB

/// libFuzzer's entry point: checks one input against every rule above and aborts
/// when one is broken.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    check(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// Checks one input (the fuzzer's and the replayer's common path).
func check(_ input: [UInt8]) {
    harness.withLock { state in
        if state == nil { state = ImportHarness.make() }
        state?.check(input)
    }
}

/// The harness, created on the first input (libFuzzer runs inputs one at a time).
let harness = Locked<ImportHarness?>(nil)

/// Reports a broken rule and aborts, so that libFuzzer saves the input.
func fail(_ message: String) -> Never {
    try? FileHandle.standardError.write(contentsOf: Data("ioasid-fuzz-import: RULE BROKEN: \(message)\n".utf8))
    abort()
}

/// The codes validation may refuse with.
let validationCodes: Set<IOASIDError.Code> = [.exportChecksumMismatch, .exportTruncated, .exportUnsupported, .exportMalformed]
/// The codes the import transaction may refuse a valid export with.
let importRefusals: Set<IOASIDError.Code> = [.exportAlreadyImported, .duplicateToken, .capacityExhausted, .cannotPlace]

/// The scratch store and what it looks like before any input.
struct ImportHarness {
    static let capacity: UInt32 = 4096

    let root: String
    let storePath: String
    let inputPath: String
    var store: IOASIDStore?
    /// `data.mdb` of the pristine store, written back after every accepted import.
    let template: [UInt8]
    /// Every record of the pristine store.
    let pristine: [String: [RawRecord]]
    /// IDs below capacity that the pristine store uses (allocated or free-pending).
    let used: Set<UInt32>
    /// What the inputs did, printed at exit.
    var counts = Counts()

    struct Counts: CustomStringConvertible {
        var inputs = 0, resealed = 0, refused = 0, refusalsImported = 0, valid = 0, importRefused = 0, imported = 0
        var description: String {
            "inputs=\(inputs) resealed=\(resealed) validation-refused=\(refused) (imported anyway: \(refusalsImported)) "
                + "valid=\(valid) import-refused=\(importRefused) imported=\(imported)"
        }
    }

    static var options: IOASIDStore.Options {
        var o = IOASIDStore.Options()
        o.capacity = capacity
        o.systemQuota = 16
        o.durability = .relaxed
        o.mapSize = 1 << 24
        return o
    }

    static func make() -> ImportHarness {
        do { return try ImportHarness() } catch { fail("cannot set up the scratch store: \(error)") }
    }

    private init() throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var pattern = Array("\(base)/ioasid-fuzz-import.XXXXXX".utf8CString)
        guard let made = mkdtemp(&pattern) else { throw IOASIDError(.storageFailure, "mkdtemp in \(base) failed") }
        let root = String(cString: made)
        self.root = root
        storePath = root + "/store"
        inputPath = root + "/input.jsonl"
        scratchRoot.withLock { $0 = root }
        atexit {
            scratchRoot.withLock { if let root = $0 { try? FileManager.default.removeItem(atPath: root) } }
            let counts = harness.withLock { $0?.counts.description } ?? ""
            try? FileHandle.standardError.write(contentsOf: Data("ioasid-fuzz-import: \(counts)\n".utf8))
        }

        // The pristine store: IDs in use, holes, a free-pending ID, a frozen set, an earlier import.
        let store = try IOASIDStore(path: storePath, options: Self.options)
        let resident = try store.createSet(token: "vm:resident", quota: 64)
        for i: UInt32 in 1...8 {
            _ = try store.allocate(in: resident, data: i % 3 == 0 ? [UInt8(i), 0xee] : [], guest: i % 2 == 0 ? 100 + i : nil)
        }
        for id: UInt32 in [100, 101, 200, 201, 202, 4000, 4095] {
            _ = try store.allocate(in: resident, range: id...id, guest: id == 200 ? 7 : nil)
        }
        _ = try store.free(IOASID(3), in: resident)
        _ = try store.retain(IOASID(5), in: resident, holder: "kvm")
        _ = try store.free(IOASID(5), in: resident)  // free-pending: held by kvm
        let frozen = try store.createSet(token: "vm:frozen", quota: 4)
        _ = try store.allocate(in: frozen, range: 300...300)
        _ = try store.exportSet(frozen, to: { _ in })
        guard overwrite(inputPath, with: Seeds.alreadyImported) else { throw IOASIDError(.storageFailure, "cannot write \(inputPath)") }
        _ = try store.importSet(from: inputPath)
        guard try store.verify().isClean else { throw IOASIDError(.corruptStore, "the pristine store does not verify") }
        var used = Set<UInt32>()
        for id in 1..<Self.capacity where (try? store.find(IOASID(id))) != nil { used.insert(id) }
        self.used = used
        pristine = try store.rawDump()
        guard let bytes = FileManager.default.contents(atPath: storePath + "/data.mdb") else {
            throw IOASIDError(.storageFailure, "cannot read the pristine data.mdb")
        }
        self.template = Array(bytes)
        self.store = store
    }

    /// Checks one input.
    mutating func check(_ input: [UInt8]) {
        counts.inputs += 1
        var bytes = input
        let header: ExportHeader
        do {
            header = try validate(&bytes)
        } catch {
            guard validationCodes.contains(error.code) else { fail("validation refused with \(error)") }
            counts.refused += 1
            if fnv(bytes) % 64 == 0 {
                counts.refusalsImported += 1
                importRefused(bytes, as: error)
            }
            return
        }
        counts.valid += 1
        importValid(bytes, header)
    }

    /// Validates `bytes`; on a checksum mismatch, re-seals them and validates again.
    private mutating func validate(_ bytes: inout [UInt8]) throws(IOASIDError) -> ExportHeader {
        do {
            return try ExportFormat.validate(bytes)
        } catch where error.code == .exportChecksumMismatch {
            guard let resealed = reseal(bytes) else { throw error }  // a digest with escapes: left as it is
            bytes = resealed
            counts.resealed += 1
            do {
                return try ExportFormat.validate(bytes)
            } catch where error.code == .exportChecksumMismatch {
                fail("the SHA-256 of every byte before the trailer does not satisfy the validator: \(error)")
            }
        }
    }

    private var currentStore: IOASIDStore {
        guard let store else { fail("the scratch store is closed") }
        return store
    }

    private func write(_ bytes: [UInt8]) {
        guard overwrite(inputPath, with: bytes) else { fail("cannot write \(inputPath): errno \(errno)") }
    }

    private func dump() -> [String: [RawRecord]] {
        do { return try currentStore.rawDump() } catch { fail("rawDump failed: \(error)") }
    }

    /// An input validation refused: importSet must refuse it with the same code and change nothing.
    private func importRefused(_ bytes: [UInt8], as refusal: IOASIDError) {
        write(bytes)
        do {
            let result = try currentStore.importSet(from: .file(inputPath))
            fail("validation refused with \(refusal) but importSet imported set \(result.set)")
        } catch {
            guard error.code == refusal.code else { fail("validation refused with \(refusal) but importSet with \(error)") }
        }
        guard dump() == pristine else { fail("a refused import (\(refusal.code)) changed the store") }
    }

    /// A valid input: imported, or refused by a rule without a trace.
    private mutating func importValid(_ bytes: [UInt8], _ header: ExportHeader) {
        write(bytes)
        guard let result = importOnce(header) else {
            counts.importRefused += 1
            return
        }
        counts.imported += 1
        checkImported(bytes, header, result)
        restore()
    }

    /// Imports the input file; nil when a rule refused it (and the store is unchanged).
    private func importOnce(_ header: ExportHeader) -> ImportResult? {
        let store = currentStore
        var lastDone = 0
        var phase = ImportPhase.validating
        let result: ImportResult
        do {
            result = try store.importSet(from: .file(inputPath), progress: { p, done, total in
                if p == .validating, phase == .importing { fail("progress went back from importing to validating") }
                if p != phase { lastDone = 0 }
                guard done >= lastDone, done <= total, total == header.count else {
                    fail("progress \(p) \(done)/\(total) after \(lastDone), header count \(header.count)")
                }
                phase = p
                lastDone = done
            })
        } catch {
            guard importRefusals.contains(error.code) else { fail("a valid export was refused with \(error)") }
            guard dump() == pristine else { fail("a refused import (\(error.code)) changed the store") }
            return nil
        }
        return result
    }

    /// Checks an accepted import against the export and the pristine store.
    private func checkImported(_ bytes: [UInt8], _ header: ExportHeader, _ result: ImportResult) {
        let store = currentStore
        let entries = Self.entries(bytes)
        guard entries.count == header.count, result.imported == header.count, result.exportID == header.exportID,
            result.token == header.token
        else {
            fail("import result \(result) does not match the export (\(entries.count) entries, header \(header))")
        }
        do {
            let report = try store.verify()
            guard report.isClean else { fail("an accepted import does not verify: \(report.violations.prefix(5))") }
            // Host IDs free before the import are kept; the others go to the lowest free IDs, in order.
            let remaps = Dictionary(result.remapped.map { ($0.from.rawValue, $0.to.rawValue) }, uniquingKeysWith: { a, _ in a })
            guard remaps.count == result.remapped.count else { fail("a host ID was remapped twice: \(result.remapped)") }
            let kept = Set(entries.map(\.id).filter { $0 < Self.capacity && !used.contains($0) })
            let moved = entries.map(\.id).filter { !kept.contains($0) }
            guard Set(remaps.keys) == Set(moved) else {
                fail("remapped \(remaps.keys.sorted()) but the IDs in use or beyond capacity were \(moved)")
            }
            var lowest: [UInt32] = []
            var candidate: UInt32 = 1
            while lowest.count < moved.count, candidate < Self.capacity {
                if !used.contains(candidate) && !kept.contains(candidate) { lowest.append(candidate) }
                candidate += 1
            }
            guard moved.map({ remaps[$0] ?? 0 }) == lowest else {
                fail("IDs \(moved) were moved to \(moved.map { remaps[$0] ?? 0 }), not to the lowest free \(lowest)")
            }
            let held = try store.ids(in: result.set).map(\.rawValue)
            let expected = entries.map { remaps[$0.id] ?? $0.id }
            guard held == expected.sorted() else { fail("the new set holds \(held), not \(expected.sorted())") }
            for (entry, id) in zip(entries, expected) {
                let info = try store.find(IOASID(id), in: result.set)
                guard info.state == .allocated, info.guest == entry.guest, info.data == entry.data else {
                    fail("ID \(entry.id) → \(id): \(info), expected guest \(entry.guest.map(String.init) ?? "none") and \(entry.data.count) bytes")
                }
            }
            let set = try store.set(result.set)
            guard set.token == header.token, set.quota == header.quota else { fail("the new set is \(set), header \(header)") }
        } catch {
            fail("checking an accepted import failed: \(error)")
        }
    }

    /// Puts the pristine store back: closes it, rewrites `data.mdb`, opens it again.
    private mutating func restore() {
        weak let closing = store
        store = nil  // the only reference: LMDB's environment closes here
        guard closing == nil else { fail("the scratch store is still referenced; it cannot be restored") }
        guard overwrite(storePath + "/data.mdb", with: template) else { fail("cannot restore data.mdb: errno \(errno)") }
        do { store = try IOASIDStore(path: storePath, options: Self.options) } catch { fail("reopening the restored store failed: \(error)") }
        if counts.imported % 64 == 1, dump() != pristine { fail("the restored store is not the pristine one") }
    }

    /// One ID line of a valid export, read back independently of the library.
    struct Entry {
        var id: UInt32
        var guest: UInt32?
        var data: [UInt8]
    }

    /// The ID lines of an export that validated (flat objects of `id`, `guest`, `data`).
    static func entries(_ bytes: [UInt8]) -> [Entry] {
        var lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard lines.count >= 2 else { fail("a valid export with \(lines.count) lines") }
        return lines.dropFirst().dropLast().map { line in
            var entry = Entry(id: 0, data: [])
            let text = String(decoding: line.filter { $0 != 0x20 && $0 != 0x09 }, as: UTF8.self)
            for field in text.dropFirst().dropLast().split(separator: ",") {
                let parts = field.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { fail("cannot read the valid ID line \(text)") }
                let value = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                switch parts[0] {
                case "\"id\"": entry.id = UInt32(value) ?? 0
                case "\"guest\"": entry.guest = UInt32(value)
                case "\"data\"": entry.data = hexDecode(value)
                default: fail("a valid ID line with the field \(parts[0])")
                }
            }
            return entry
        }
    }
}

/// Writes `bytes` to `path` (created 0600 or truncated) without syncing: the scratch
/// files need no durability, and `Data.write` would fsync every input.
func overwrite(_ path: String, with bytes: [UInt8]) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return false }
        offset += n
    }
    return true
}

/// The scratch directory, removed at exit.
let scratchRoot = Locked<String?>(nil)

/// FNV-1a, to pick inputs by content (so a run replays the same way).
func fnv(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

func hexDecode(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8)
    return stride(from: 0, to: digits.count - 1, by: 2).compactMap { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) }
}

/// Replaces the `"sha256":"…"` value of the trailer that failed (the first line
/// after the header that holds the key; the lines before it are the header and
/// valid ID lines, which cannot) with the SHA-256 of every byte before that line;
/// nil when there is no such line or its digest has escapes.
func reseal(_ bytes: [UInt8]) -> [UInt8]? {
    let key = Array("\"sha256\"".utf8)
    guard var start = bytes.firstIndex(of: 0x0a).map({ $0 + 1 }) else { return nil }
    while start < bytes.count {
        let end = bytes[start...].firstIndex(of: 0x0a) ?? bytes.count
        let line = bytes[start..<end]
        if let keyAt = line.indices.first(where: { line[$0...].starts(with: key) }) {
            var i = keyAt + key.count
            while i < end, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == UInt8(ascii: ":") { i += 1 }
            guard i < end, bytes[i] == UInt8(ascii: "\""),
                let close = bytes[(i + 1)..<end].firstIndex(of: UInt8(ascii: "\"")),
                !bytes[(i + 1)..<close].contains(UInt8(ascii: "\\"))
            else { return nil }
            let digest = Array(hex(SHA256.hash(data: bytes[..<start])).utf8)
            return Array(bytes[...i]) + digest + bytes[close...]
        }
        start = end + 1
    }
    return nil
}

/// Exports built by hand for the pristine store and the seed corpus.
enum Seeds {
    /// An export with the given header fields and ID lines, sealed.
    static func export(exportID: String, token: String, quota: UInt32, set: UInt32 = 2, lines: [String]) -> [UInt8] {
        var body = "{\"count\":\(lines.count),\"createdAt\":1700000000000,\"exportID\":\"\(exportID)\",\"format\":\"ioasid-set-export\","
        body += "\"quota\":\(quota),\"set\":\(set),\"sourceStore\":\"0123456789abcdef0123456789abcdef\",\"token\":\"\(token)\",\"version\":1}\n"
        for line in lines { body += line + "\n" }
        let bytes = Array(body.utf8)
        return bytes + Array("{\"count\":\(lines.count),\"end\":true,\"sha256\":\"\(hex(SHA256.hash(data: bytes)))\"}\n".utf8)
    }

    /// Imported into the pristine store, so its export ID is taken there.
    static let alreadyImported = export(
        exportID: "6f1c0e2a-7b3d-4c5e-9f80-1a2b3c4d5e6f", token: "vm:already-imported", quota: 8,
        lines: ["{\"guest\":1,\"id\":1}", "{\"data\":\"c0ffee\",\"id\":50}"]
    )
}

#if !LIBFUZZER
/// Without libFuzzer: replays inputs through the same checks, or writes seeds.
@main
enum Replay {
    static func main() throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--make-seeds", arguments.count == 2 {
            try makeSeeds(in: arguments[1])
            return
        }
        guard !arguments.isEmpty, !arguments.contains(where: { $0.hasPrefix("-") }) else {
            try? FileHandle.standardError.write(contentsOf: Data("usage: ioasid-fuzz-import FILE|DIR... | --make-seeds DIR\n".utf8))
            exit(64)
        }
        var count = 0
        while let path = arguments.popLast() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                try? FileHandle.standardError.write(contentsOf: Data("ioasid-fuzz-import: no such file \(path)\n".utf8))
                exit(66)
            }
            if isDirectory.boolValue {
                arguments += try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
                continue
            }
            check(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
            count += 1
        }
        print("ioasid-fuzz-import: \(count) inputs replayed, no rule broken")
    }

    /// Writes valid exports of several shapes, made by a real store, plus hand-made ones.
    static func makeSeeds(in directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let scratch = NSTemporaryDirectory() + "ioasid-seeds-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var options = ImportHarness.options
        options.capacity = 8192
        let shapes: [(name: String, ids: [UInt32], guests: Bool, data: Bool)] = [
            ("empty", [], false, false),
            ("one", [1], false, false),
            ("guests", Array(1...6), true, false),
            ("data", [2, 3, 9, 100], false, true),
            ("mixed", [1, 2, 5, 8, 101, 250, 300, 4000, 4094], true, true),
            ("beyond-capacity", [4095, 5000, 8191], true, false),
        ]
        for (index, shape) in shapes.enumerated() {
            let source = try IOASIDStore(path: "\(scratch)/\(index)", options: options)
            let set = try source.createSet(token: "vm:seed-\(shape.name)", quota: UInt32(max(4, shape.ids.count + 2)))
            for (i, id) in shape.ids.enumerated() {
                let data: [UInt8] = shape.data && i % 2 == 0 ? Array(repeating: UInt8(i + 1), count: i + 1) : []
                _ = try source.allocate(in: set, range: id...id, data: data, guest: shape.guests ? UInt32(40 + i * 3) : nil)
            }
            var bytes: [UInt8] = []
            _ = try source.exportSet(set, to: { bytes += $0 })
            try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/valid-\(index)-\(shape.name).jsonl"))
        }
        try Data(Seeds.alreadyImported).write(to: URL(fileURLWithPath: "\(directory)/valid-already-imported.jsonl"))
        let handMade: [(String, [UInt8])] = [
            ("resident-token", Seeds.export(exportID: "0b8e6c52-3f41-4a7d-8e21-5c6d7e8f9a0b", token: "vm:resident", quota: 2, lines: ["{\"id\":7}"])),
            ("over-capacity", Seeds.export(exportID: "1c9f7d63-4052-4b8e-9f32-6d7e8f9a0b1c", token: "vm:huge", quota: 4000, lines: [])),
            ("spaces-and-order", Array(Seeds.export(
                exportID: "2da08e74-5163-4c9f-a043-7e8f9a0b1c2d", token: "vm:spaced", quota: 3,
                lines: ["{ \"id\" : 4 ,\t\"guest\" : 9 }", "{\"id\":6,\"data\":\"00ff\"}"]))),
        ]
        for (name, bytes) in handMade {
            try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/valid-\(name).jsonl"))
        }
        print("wrote \(shapes.count + 1 + handMade.count) seeds to \(directory)")
    }
}
#endif
