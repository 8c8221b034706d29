import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Issue 10, paths and owners: through the built `ioasid` binary; every refusal
// leaves the store's records and every file beside it as they were.

// MARK: - 5: paths and owners

@Suite("Hostile I/O: paths and owners")
struct HostilePathTests {
    static func scene() throws -> (TemporaryDirectory, String) {
        let dir = try TemporaryDirectory()
        let store = dir.child("store")
        try Hostile.makeStore(store, sets: [.init(token: "vm:a", count: 2)])
        return (dir, store)
    }

    @Test("A store directory open to group or others, or a store file others could change, is refused with exit 3 naming the path and the chmod; a file others could read is refused for writing only",
          arguments: [("", 0o755 as mode_t), ("", 0o750), ("", 0o701), ("/data.mdb", 0o644), ("/data.mdb", 0o666), ("/data.mdb", 0o640),
                      ("/lock.mdb", 0o644)])
    func openModes(file: String, mode: mode_t) throws {
        let (dir, store) = try Self.scene()
        defer { dir.cleanup() }
        let path = store + file
        #expect(chmod(path, mode) == 0)
        let before = try Hostile.Snapshot(store: store, under: dir.path)
        // Behind a private directory, a file others can only read is a read-only copy: reads work.
        let readable = !file.isEmpty && mode & 0o022 == 0
        for command in [["status"], ["alloc", "--set", "2"], ["--json", "status"]] {
            let outcome = try Hostile.ioasid(["--store", store] + command)
            if readable && command.last == "status" {
                #expect(outcome.status == 0, "mode \(String(mode, radix: 8)) on \(path), \(command): \(outcome.summary)")
                continue
            }
            #expect(outcome.status == 3, "mode \(String(mode, radix: 8)) on \(path), \(command): \(outcome.summary)")
            #expect(outcome.stderr.contains(path) && outcome.stderr.contains("chmod"), "\(command): \(outcome.stderr)")
        }
        try Hostile.expectUnchanged(before, store: store, under: dir.path, "a store open to others")
        #expect(chmod(path, file.isEmpty ? 0o700 : 0o600) == 0)
        #expect(try Hostile.ioasid(["--store", store, "status"]).status == 0)
    }

    @Test("A symbolic link as the store directory (with or without a trailing slash) or as data.mdb is refused with exit 3")
    func symbolicLinks() throws {
        let (dir, store) = try Self.scene()
        defer { dir.cleanup() }
        let link = dir.child("link")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: store)
        let linkedFile = dir.child("linked")
        try FileManager.default.createDirectory(atPath: linkedFile, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createSymbolicLink(atPath: linkedFile + "/data.mdb", withDestinationPath: store + "/data.mdb")
        let before = try Hostile.Snapshot(store: store, under: dir.path)
        for (path, says) in [(link, "symbolic link"), (link + "/", "symbolic link"), (linkedFile, "symbolic link")] {
            for command in [["status"], ["alloc", "--set", "2"]] {
                let outcome = try Hostile.ioasid(["--store", path] + command)
                #expect(outcome.status == 3, "\(path) \(command): \(outcome.summary)")
                #expect(outcome.stderr.contains(says), "\(path): \(outcome.stderr)")
            }
        }
        try Hostile.expectUnchanged(before, store: store, under: dir.path, "a store through a symbolic link")
        // init through a link to an empty directory creates nothing there.
        let empty = dir.child("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let emptyLink = dir.child("empty-link")
        try FileManager.default.createSymbolicLink(atPath: emptyLink, withDestinationPath: empty)
        let treeBefore = Hostile.tree(dir.path)
        for path in [emptyLink, emptyLink + "/"] {
            let outcome = try Hostile.ioasid(["--store", path, "init", "--capacity", "64", "--system-quota", "8"])
            #expect(outcome.status == 3, "\(path): \(outcome.summary)")
            #expect(outcome.stderr.contains("symbolic link"), "\(path): \(outcome.stderr)")
        }
        #expect(Hostile.tree(dir.path) == treeBefore)
    }

    @Test("A regular file as the store directory, or a FIFO as data.mdb, is refused naming what it is; nothing is opened or changed")
    func notDirectoryOrFile() throws {
        let (dir, store) = try Self.scene()
        defer { dir.cleanup() }
        let file = dir.child("file")
        try Hostile.write(Data("not a store\n".utf8), to: file)
        let fifoStore = dir.child("fifo-store")
        try FileManager.default.createDirectory(atPath: fifoStore, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        #expect(mkfifo(fifoStore + "/data.mdb", 0o600) == 0)
        let before = try Hostile.Snapshot(store: store, under: dir.path)
        for (path, says, code) in [(file, "is not a directory", "invalidArgument"), (fifoStore, "data.mdb is not a regular file", "corruptStore")] {
            for command in [["status"], ["alloc", "--set", "2"], ["init", "--capacity", "64", "--system-quota", "8"]] {
                let outcome = try Hostile.ioasid(["--store", path] + command)
                #expect(outcome.status != 0 && outcome.stderr.contains(says), "\(path) \(command): \(outcome.summary)")
                let json = try Hostile.ioasid(["--store", path, "--json"] + command)
                #expect(json.stderr.contains("\"code\":\"\(code)\""), "\(path) \(command): \(json.summary)")
            }
        }
        try Hostile.expectUnchanged(before, store: store, under: dir.path, "a file or FIFO in the store's place")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "not a store\n")
    }

    @Test("--store '' is a usage error (64)")
    func emptyStorePath() throws {
        for command in [["status"], ["init"], ["alloc", "--set", "2"]] {
            let outcome = try Hostile.ioasid(["--store", ""] + command)
            #expect(outcome.status == 64, "\(command): \(outcome.summary)")
        }
    }

    @Test("init in a directory holding unrelated files, or over an existing store, is refused and changes nothing")
    func initRefusals() throws {
        let (dir, store) = try Self.scene()
        defer { dir.cleanup() }
        let unrelated = dir.child("unrelated")
        try FileManager.default.createDirectory(atPath: unrelated, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try Hostile.write(Data("notes\n".utf8), to: unrelated + "/notes.txt")
        let before = try Hostile.Snapshot(store: store, under: dir.path)
        let overUnrelated = try Hostile.ioasid(["--store", unrelated, "init", "--capacity", "64", "--system-quota", "8"])
        #expect(overUnrelated.status != 0, "\(overUnrelated.summary)")
        #expect(overUnrelated.stderr.contains("not a store"), "\(overUnrelated.stderr)")
        let twice = try Hostile.ioasid(["--store", store, "--json", "init", "--capacity", "64", "--system-quota", "8"])
        #expect(twice.status == 1, "\(twice.summary)")
        #expect(twice.errorCode == "alreadyInitialized", "\(twice.stderr)")
        try Hostile.expectUnchanged(before, store: store, under: dir.path, "refused inits")
    }

    @Test("A store that belongs to another user is refused with exit 3, naming the owner",
          .enabled(if: Hostile.isRoot, "needs root to give the store to another user"))
    func anotherUsersStore() throws {
        try #require(try Hostile.ensureTestUser())
        let (dir, store) = try Self.scene()
        defer { dir.cleanup() }
        #expect(try Hostile.system("/bin/chown", ["-R", Hostile.testUser, store]) == 0)
        let before = try Hostile.Snapshot(store: store, under: dir.path)
        let outcome = try Hostile.ioasid(["--store", store, "status"])
        #expect(outcome.status == 3, "\(outcome.summary)")
        #expect(outcome.stderr.contains("belongs to user"), "\(outcome.stderr)")
        try Hostile.expectUnchanged(before, store: store, under: dir.path, "another user's store")
    }
}
