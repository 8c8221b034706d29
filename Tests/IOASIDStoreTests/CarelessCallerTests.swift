import Foundation
import IOASIDMigrations
import IOASIDStore
import IOASIDTestSupport
import LMDB
import Testing

/// What a careless or hostile caller of the CLI must not get: files of theirs replaced or
/// deleted, an operation skipped or a change made in silence, text that is not what it
/// says, or a damaged store answering "not allocated". Each was seen with the tool before
/// the fix (a hostile-input audit of 2026-12-03).
@Suite("Careless callers: nothing replaced, skipped or misread in silence")
struct CarelessCallerTests {
    typealias Session = CLITests.Session

    /// A store with set 2 (`vm:a`, quota 10) holding IDs 1 and 2.
    static func session() throws -> Session {
        let s = try Session()
        #expect(try s.run("init", "--capacity", "256").status == 0)
        #expect(try s.run("set", "create", "--token", "vm:a", "--quota", "10").status == 0)
        #expect(try s.run("alloc", "--set", "2", "--count", "2").status == 0)
        return s
    }

    @Test("backup --force replaces only a previous backup or an empty directory: never a directory of other files, the store itself, or a backup open elsewhere")
    func backupForceReplacesOnlyBackups() throws {
        let s = try Self.session()
        defer { s.dir.cleanup() }
        let fm = FileManager.default
        // A directory of someone's files: before the fix, --force unlinked a.txt and left a temporary directory beside it.
        let docs = s.dir.child("docs")
        try fm.createDirectory(atPath: docs + "/sub", withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: docs + "/a.txt"))
        let refused = try s.json("backup", docs, "--force")
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect((refused.errorDocument?["message"] as? String)?.contains("is not a previous backup") == true, "\(refused.stderr)")
        #expect(try fm.contentsOfDirectory(atPath: docs).sorted() == ["a.txt", "sub"])
        #expect(try fm.contentsOfDirectory(atPath: s.dir.path).filter { $0.hasPrefix(".") }.isEmpty, "no temporary directory is left")
        // The store's own directory: before the fix, the live store was swapped for a copy.
        let own = try s.run("backup", s.store, "--force")
        #expect(own.status == 64 && own.stderr.contains("this store's own directory"), "\(own.stderr)")
        // A data.mdb that is not LMDB's.
        let fake = s.dir.child("fake")
        try fm.createDirectory(atPath: fake, withIntermediateDirectories: false)
        try Data("not lmdb".utf8).write(to: URL(fileURLWithPath: fake + "/data.mdb"))
        #expect(try s.run("backup", fake, "--force").status == 64)
        #expect(try Data(contentsOf: URL(fileURLWithPath: fake + "/data.mdb")) == Data("not lmdb".utf8))
        // An empty directory and a previous backup (opened once, so with lock.mdb) are replaced.
        let empty = s.dir.child("empty")
        try fm.createDirectory(atPath: empty, withIntermediateDirectories: false)
        #expect(try s.run("backup", empty, "--force").status == 0)
        let backup = s.dir.child("backup")
        #expect(try s.run("backup", backup).status == 0)
        #expect(try CLI.run(["--store", backup, "status"]).status == 0)
        #expect(try fm.contentsOfDirectory(atPath: backup).sorted() == ["data.mdb", "lock.mdb"])
        #expect(try s.run("alloc", "--set", "2").out == "3")
        #expect(try s.run("backup", backup, "--force").status == 0)
        #expect(try CLI.run(["--store", backup, "set", "ids", "2"]).out == "1\n2\n3")
        // A link to the backup, and a backup whose data.mdb is a link: refused, and left as they are.
        let link = s.dir.child("link")
        try fm.createSymbolicLink(atPath: link, withDestinationPath: backup)
        #expect(try s.run("backup", link, "--force").status == 64)
        #expect(try fm.destinationOfSymbolicLink(atPath: link) == backup)
        let linked = s.dir.child("linked")
        try fm.createDirectory(atPath: linked, withIntermediateDirectories: false)
        try fm.createSymbolicLink(atPath: linked + "/data.mdb", withDestinationPath: backup + "/data.mdb")
        let linkedResult = try s.run("backup", linked, "--force")
        #expect(linkedResult.status == 64 && linkedResult.stderr.contains("not a regular file"), "\(linkedResult.stderr)")
        #expect(try fm.destinationOfSymbolicLink(atPath: linked + "/data.mdb") == backup + "/data.mdb")
        // Open in another process (this one, to the tool): refused, and the backup is unchanged.
        do {
            let open = try IOASIDStore(path: backup)
            #expect(try open.set(SetID(2)).allocated == 3)
            #expect(try s.run("alloc", "--set", "2").out == "4")
            let busy = try s.run("backup", backup, "--force")
            #expect(busy.status == 64 && busy.stderr.contains("is open as a store in another process"), "\(busy.stderr)")
            #expect(try open.set(SetID(2)).allocated == 3)
            // Open in this process: its lock cannot be seen from here (and a probe's close would drop it).
            let source = try IOASIDStore(path: s.store)
            do {
                try source.backup(to: backup, replacing: true)
                Issue.record("a backup replaced a store open in this process")
            } catch {
                #expect(error.code == .invalidArgument && error.message.contains("open as a store in this process"), "\(error)")
            }
            #expect(try open.set(SetID(2)).allocated == 3)
        }
    }

    @Test("migrate export --out FILE --force replaces only a regular file: a FIFO, a device, a symbolic link or a directory is refused and left as it was")
    func exportForceReplacesOnlyRegularFiles() throws {
        let s = try Self.session()
        defer { s.dir.cleanup() }
        let fifo = s.dir.child("fifo"), link = s.dir.child("link"), directory = s.dir.child("directory")
        #expect(mkfifo(fifo, 0o600) == 0)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: s.dir.child("target"))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        // A device of the test's own where the system lets it make one (never /dev/full with
        // --force: a tool that replaced it would break the machine for everyone after it).
        let device = s.dir.child("full")
        let devices = mknod(device, mode_t(S_IFCHR) | 0o600, dev_t(1 << 8 | 7)) == 0 ? [(device, "a FIFO or device")] : []
        for (path, kind) in [(fifo, "a FIFO or device"), (link, "a symbolic link"), (directory, "a directory")] + devices {
            for force in [true, false] {
                let result = try CLI.run(["--store", s.store, "migrate", "export", "--set", "2", "--out", path] + (force ? ["--force"] : []))
                #expect(result.status == 64, "\(path): \(result.stderr)")
                #expect(result.stderr.contains("exists and is \(kind), not a regular file"), "\(path): \(result.stderr)")
                #expect(!result.stderr.contains("pass --force"), "--force would not help: \(result.stderr)")
            }
        }
        #expect(try FileSystem.status(fifo)?.kind == .other, "the FIFO is still a FIFO")
        if !devices.isEmpty { #expect(try FileSystem.status(device)?.kind == .other, "the device is still a device") }

        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == s.dir.child("target"))
        #expect(!FileManager.default.fileExists(atPath: s.dir.child("target")))
        let set = try #require(try s.json("set", "show", "2").json as? [String: Any])
        #expect(set["frozen"] as? Bool == false, "a refused export freezes nothing")
        // A regular file is still replaced with --force.
        let file = s.dir.child("vm.export")
        try Data("old".utf8).write(to: URL(fileURLWithPath: file))
        #expect(try s.run("migrate", "export", "--set", "2", "--out", file).status == 64)
        #expect(try s.run("migrate", "export", "--set", "2", "--out", file, "--force").status == 0)
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix("{"))
    }

    @Test("batch: a CRLF line ends where its LF does (a comment no longer swallows the next operation); a CR inside a line is refused")
    func batchLineEnds() throws {
        let s = try Self.session()
        defer { s.dir.cleanup() }
        let crlf = try CLI.run(["--store", s.store, "batch"], input: "# teardown\r\nfree 1 --set 2\r\nfree 2 --set 2\r\n")
        #expect(crlf.status == 0, "\(crlf.stderr)")
        #expect(crlf.out == "freed 1 (free)\nfreed 2 (free)", "\(crlf.stdout)")
        #expect(try s.run("set", "ids", "2").out == "")
        #expect(try s.run("alloc", "--set", "2", "--count", "2").status == 0)
        // Shown on a terminal, the CR hides the comment: "free 1 --set 2" would seem to run.
        let hidden = try CLI.run(["--store", s.store, "--json", "batch"], input: "# keep everything\rfree 1 --set 2\nfree 2 --set 2\n")
        #expect(hidden.status == 64, "\(hidden.stderr)")
        #expect((hidden.errorDocument?["message"] as? String)?.contains("line 1 holds a carriage return") == true, "\(hidden.stderr)")
        #expect(try s.run("set", "ids", "2").out == "1\n2", "nothing was committed")
    }

    @Test("data ID --set S with an empty HEX (an unset shell variable) is refused, not taken for --clear")
    func emptyDataIsRefused() throws {
        let s = try Self.session()
        defer { s.dir.cleanup() }
        #expect(try s.run("data", "1", "--set", "2", "01f0").status == 0)
        for hex in ["", "0x"] {
            let result = try s.run("data", "1", "--set", "2", hex)
            #expect(result.status == 64, "\(hex): \(result.stderr)")
            #expect(result.stderr.contains("HEX is empty"), "\(result.stderr)")
        }
        #expect(try s.run("data", "1", "--set", "2").out == "01f0")
        let odd = try s.run("data", "1", "--set", "2", "0xabc")
        #expect(odd.stderr.contains("e.g. 0x0abc"), "\(odd.stderr)")
        #expect(try s.run("data", "1", "--set", "2", "--clear").status == 0)
        #expect(try s.run("data", "1", "--set", "2").out == "")
    }

    @Test("An allocation or a new set whose output cannot be written exits 3 and says what it committed")
    func committedButUnprinted() throws {
        let s = try Self.session()
        defer { s.dir.cleanup() }
        func toDevFull(_ arguments: [String]) throws -> CLI.Result {
            try CLI.run(["-c", "\(CLITerminalTests.quoted([CLITerminalTests.ioasid, "--store", s.store] + arguments)) > /dev/full"], product: "/bin/sh")
        }
        let one = try toDevFull(["alloc", "--set", "2"])
        #expect(one.status == 3)
        #expect(one.stderr.hasPrefix("ioasid: error: allocated ID 3 in set 2, and committed it, but cannot write to standard output"), "\(one.stderr)")
        let many = try toDevFull(["alloc", "--set", "2", "--count", "3"])
        #expect(many.stderr.hasPrefix("ioasid: error: allocated 3 IDs in set 2 (4-6), and committed it"), "\(many.stderr)")
        let set = try toDevFull(["set", "create", "--token", "vm:b", "--quota", "1"])
        #expect(set.stderr.hasPrefix("ioasid: error: created set 3, and committed it"), "\(set.stderr)")
        #expect(try s.run("set", "ids", "2").out == "1\n2\n3\n4\n5\n6", "what the messages name is what the store holds")
    }

    @Test("An argument that is not UTF-8 is a usage error: two paths differing in bytes that are not text never name one store")
    func argumentsMustBeUTF8() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        // printf writes the bytes; Swift strings (and so Process's arguments) cannot hold them.
        let script = "cd \"$1\" && \"$0\" --store \"$(printf 'p\\376')\" init; echo \"status $?\"; \"$0\" --json --store \"$(printf 'p\\377')\" status; echo \"status $?\""
        let result = try CLI.run(["-c", script, CLITerminalTests.ioasid, s.dir.path], product: "/bin/sh")
        #expect(result.stdout == "status 64\nstatus 64\n", "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("argument 2 is not UTF-8 text"), "\(result.stderr)")
        #expect(result.stderr.contains("\"code\":\"usage\""), "\(result.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.dir.path).isEmpty, "no store was created")
    }

    @Test("--verbose escapes control characters of paths and names in its log lines")
    func verboseLogIsEscaped() throws {
        let s = try Self.session()
        defer { s.dir.cleanup() }
        let titled = s.dir.child("b\u{1B}]0;pwned\u{07}")
        let result = try CLI.run(["--verbose", "--store", s.store, "backup", titled])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("debug"), "the operation was logged: \(result.stderr)")
        #expect(!result.stderr.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(result.stderr.debugDescription)")
        #expect(result.stderr.contains("\\u{1B}]0;pwned\\u{7}"), "\(result.stderr.debugDescription)")
        let missing = try CLI.run(["--verbose", "--store", s.dir.child("s\u{1B}[31m"), "status"])
        #expect(!missing.stderr.unicodeScalars.contains { $0.value == 0x1B }, "\(missing.stderr.debugDescription)")
    }

    @Test("An ID in range whose record is lost but which the free index does not hold is a damaged store, not 'not allocated'")
    func lostRecordIsDamage() throws {
        let s = try Self.session()
        defer { s.dir.cleanup() }
        // What a flipped bit in a node pointer of an ids page does to a lookup (checked by hand
        // with such a flip): the record is not found. Here it is deleted behind the store's back.
        do {
            let env = try Environment.open(path: s.store)
            let ids = try env.openDatabase(named: StoreLayout.DB.ids.rawValue)
            let deleted = try env.write { txn in try txn.delete(StoreLayout.idKey(2), in: ids) }
            #expect(deleted)
        }
        let before = try Data(contentsOf: URL(fileURLWithPath: s.store + "/data.mdb"))
        for arguments in [["find-set", "2"], ["find", "2", "--set", "2"], ["--json", "find", "2"], ["free", "2", "--set", "2"]] {
            let result = try CLI.run(["--store", s.store] + arguments)
            #expect(result.status == 3, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("ID 2 is neither allocated nor free"), "\(arguments): \(result.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.store + "/data.mdb")) == before, "nothing was written")
        // Free IDs and IDs out of range are still simply not allocated.
        for id in ["3", "255", "256", "0"] {
            let result = try s.json("find-set", id)
            #expect(result.status == 2 && result.errorCode == "noSuchID", "\(id): \(result.stderr)")
        }
        // The library says the same.
        let store = try IOASIDStore(path: s.store)
        #expect(throws: IOASIDError.self) { try store.findSet(IOASID(2)) }
        do { _ = try store.findSet(IOASID(2)) } catch { #expect(error.code == .corruptStore) }
        do { _ = try store.find(IOASID(3)) } catch { #expect(error.code == .noSuchID) }
    }
}
