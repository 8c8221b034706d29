import Foundation
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

@Suite("Damaged files")
struct DamageTests {
    /// A store with a few thousand IDs (several leaf pages under a branch page), closed.
    static func makeStore(in dir: TemporaryDirectory) throws -> String {
        let path = dir.child("pristine")
        var options = IOASIDStore.Options()
        options.capacity = 1 << 16
        let store = try IOASIDStore(path: path, options: options)
        let vm = try store.createSet(token: "vm", quota: 10_000)
        try store.write { tx in
            for i in 0..<3000 { _ = try tx.allocate(in: vm, data: i % 3 == 0 ? [UInt8](repeating: 7, count: 40) : [], guest: UInt32(i)) }
        }
        return path
    }

    static func copy(_ source: String, to destination: String, swapping a: Int, _ b: Int) throws {
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: source + "/data.mdb")))
        let page = 4096
        let first = Array(data[(a * page)..<((a + 1) * page)])
        data.replaceSubrange((a * page)..<((a + 1) * page), with: data[(b * page)..<((b + 1) * page)])
        data.replaceSubrange((b * page)..<((b + 1) * page), with: first)
        #expect(FileManager.default.createFile(atPath: destination + "/data.mdb", contents: Data(data), attributes: [.posixPermissions: 0o600]))
    }

    @Test("Swapped pages never kill the process: LMDB's faults and failed checks become corruptStore, naming the damage")
    func swappedPagesAreReportedNotFatal() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = try Self.makeStore(in: dir)
        let pages = Int(try FileSystem.status(source + "/data.mdb")?.size ?? 0) / 4096
        var options = IOASIDStore.Options()
        options.readOnly = true
        options.creation = .openExisting
        // The answers of the undamaged store.
        func answers(_ store: IOASIDStore) throws -> String {
            "\(try store.ids(in: 2).count) \(try store.status().allocated) \(try store.find(1500)) \(try store.hostID(forGuest: 2999, in: 2))"
        }
        let expected = try answers(try IOASIDStore(path: source, options: options))
        var faults = 0, reported = 0, answered = 0
        var trial = 0
        for a in 2..<min(pages, 30) {
            for b in (a + 1)..<min(pages, 30) {
                trial += 1
                let path = dir.child("trial-\(trial)")
                try Self.copy(source, to: path, swapping: a, b)
                // Each lookup walks pages through LMDB: scans, lookups, counts. Either the
                // answer is right, or the damage is reported — by the call, or by verify.
                let store: IOASIDStore
                do { store = try IOASIDStore(path: path, options: options) } catch {
                    #expect(error.category == .storeUnusable, "trial \(trial) (pages \(a)↔\(b)): \(error)")
                    reported += 1
                    continue
                }
                let outcome = Result { try answers(store) }
                if case .failure(let error as IOASIDError) = outcome, (error.cause as? LMDBError) == .fault { faults += 1 }
                if case .success(let got) = outcome, got == expected {
                    answered += 1
                    continue
                }
                do {
                    let report = try store.verify()
                    #expect(!report.isClean, "trial \(trial) (pages \(a)↔\(b)): a wrong answer \(outcome) while verify is clean")
                } catch {
                    #expect(error.code == .corruptStore, "trial \(trial) (pages \(a)↔\(b)): \(error)")
                }
                reported += 1
            }
        }
        // The guard was exercised: some swaps made LMDB fault or assert, and the process lived.
        #expect(faults > 0, "no swap reached a guarded fault (\(reported) reported, \(answered) answered)")
        print("swapped pages: \(trial) trials, \(faults) guarded faults, \(reported) reported, \(answered) answered correctly")
    }

    @Test("Another page where the catalogue of databases should be: corruptStore, and a writable open (verify --repair) never migrates over it")
    func damagedCatalogueIsNotMigratedOver() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = try Self.makeStore(in: dir)
        // The newest meta page's main-database root (MDB_meta: md_root of mm_dbs[1] at 128, mm_txnid at 144).
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: source + "/data.mdb")))
        func u64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(data[at + $1]) << (8 * $1) } }
        let meta = u64(144) >= u64(4096 + 144) ? 0 : 4096
        let root = u64(meta + 128)
        let pages = data.count / 4096
        #expect(root >= 2 && root < pages)
        var checked = 0
        for other in [2, 3, pages - 1] where other != root {
            let path = dir.child("catalogue-\(other)")
            try Self.copy(source, to: path, swapping: root, other)
            let before = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
            var options = IOASIDStore.Options()
            options.creation = .openExisting
            options.readOnly = true
            do {
                let store = try IOASIDStore(path: path, options: options)
                // Opened (the swap kept a catalogue that reads): then verify must see the damage.
                #expect(try !store.verify().isClean, "pages \(root)↔\(other): opened and verified clean")
            } catch {
                #expect(error.code == .corruptStore, "pages \(root)↔\(other): \(error)")
            }
            // Writable opens run in a child process: LMDB writing over a damaged
            // tree can corrupt the heap of the process it runs in.
            let write = try CLI.run(["--store", path, "alloc", "--set", "1"])
            #expect(write.status == 3, "alloc: \(write.status) \(write.stderr)")
            let repair = try CLI.run(["--store", path, "verify", "--repair"])
            #expect(repair.status == 3 || repair.status == 1, "verify --repair: \(repair.status) \(repair.stderr)")
            // Nothing was migrated or repaired over the damage.
            #expect(try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb")) == before, "pages \(root)↔\(other): data.mdb changed")
            checked += 1
        }
        #expect(checked >= 2)
    }

    @Test("A truncated, empty or zeroed data.mdb, or a symlink to one, is corruptStore and no byte changes")
    func damagedFilesAreNotRewritten() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = try Self.makeStore(in: dir)
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: source + "/data.mdb")))
        let damages: [(String, ([UInt8]) -> [UInt8])] = [
            ("empty", { _ in [] }),
            ("truncated to 8192", { Array($0.prefix(8192)) }),
            ("truncated to half", { Array($0.prefix($0.count / 2)) }),
            ("zeroed meta pages", { Array(repeating: 0, count: 8192) + $0.dropFirst(8192) }),
        ]
        for (index, (name, damage)) in damages.enumerated() {
            let path = dir.child("damaged-\(index)")
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            #expect(FileManager.default.createFile(atPath: path + "/data.mdb", contents: Data(damage(original)), attributes: [.posixPermissions: 0o600]))
            let before = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
            for readOnly in [true, false] {
                var options = IOASIDStore.Options()
                options.readOnly = readOnly
                expectError(.corruptStore) { try IOASIDStore(path: path, options: options) }
            }
            let after = try Data(contentsOf: URL(fileURLWithPath: path + "/data.mdb"))
            #expect(before == after, "\(name): opening changed data.mdb")
            #expect(!FileManager.default.fileExists(atPath: path + "/lock.mdb"), "\(name): opening created lock.mdb")
        }
        // A symbolic link in place of data.mdb is refused without being followed.
        let linked = dir.child("linked")
        try FileManager.default.createDirectory(atPath: linked, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(atPath: linked + "/data.mdb", withDestinationPath: source + "/data.mdb")
        expectError(.corruptStore) { try IOASIDStore(path: linked) }
    }
}
