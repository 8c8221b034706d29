import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

/// Reads never write: read commands work on read-only media and files, and
/// beside a long write by another process; write commands fail cleanly.
@Suite("Read-only stores and readers beside writers", .serialized)
struct ReadOnlyTests {
    /// The read commands of the CLI (backup writes only its destination).
    static func reads(backupTo destination: String) -> [[String]] {
        [["status"], ["find", "1"], ["find-set", "1"], ["set", "list"], ["set", "ids", "2"], ["events", "pending", "audit"],
         ["events", "list"], ["verify"], ["capacity"], ["backup", destination]]
    }

    /// Write commands, each refused on read-only media.
    static let writes: [[String]] = [
        ["alloc", "--set", "2"], ["set", "create", "--token", "vm:other", "--quota", "1"], ["free", "1", "--set", "2"],
        ["events", "ack", "audit", "--through", "1"], ["verify", "--repair"],
    ]

    /// A store with a set (2), IDs, a subscriber with unacknowledged events and a free-pending ID.
    static func populate(_ path: String) throws {
        let store = try IOASIDStore(path: path)
        try store.subscribe("audit")
        let vm = try store.createSet(token: "vm:a", quota: 10)
        for _ in 0..<4 { _ = try store.allocate(in: vm) }
        try store.free(3, in: vm)
    }

    static func snapshot(_ path: String) throws -> [Data] {
        try ["data.mdb", "lock.mdb"].map { try Data(contentsOf: URL(fileURLWithPath: path + "/" + $0)) }
    }

    static let isRoot = getuid() == 0

    @Test("On a read-only bind mount every read command works and every write fails with exit 3, changing nothing",
          .enabled(if: isRoot, "needs root to bind-mount a directory read-only"))
    func readOnlyMount() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let source = dir.child("source")
        let mount = dir.child("mount")
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try Self.populate(source + "/store")
        guard try run("/bin/mount", ["--bind", source, mount]) == 0 else {
            Issue.record("mount --bind failed although running as root")
            return
        }
        defer { _ = try? run("/bin/umount", [mount]) }
        #expect(try run("/bin/mount", ["-o", "remount,bind,ro", mount]) == 0)
        let store = mount + "/store"
        let before = try Self.snapshot(store)
        for (index, command) in Self.reads(backupTo: dir.child("backup-\(UUID().uuidString)")).enumerated() {
            let result = try CLI.run(["--store", store] + command)
            #expect(result.status == 0, "\(command) (\(index)): \(result.stderr)")
        }
        for command in Self.writes {
            let result = try CLI.run(["--store", store, "--json"] + command)
            #expect(result.status == 3, "\(command): \(result.stdout) \(result.stderr)")
            #expect(result.errorCode == "readOnly", "\(command): \(result.stderr)")
        }
        #expect(try Self.snapshot(store) == before, "a command changed the read-only store")
    }

    @Test("With 0400 files, the owner's read commands work (without lock.mdb) and writes fail with exit 3",
          .enabled(if: isRoot, "needs root to create a second, unprivileged user (root ignores file modes)"))
    func readOnlyFiles() throws {
        let user = "ioasid-test"
        if try run("/usr/bin/id", [user]) != 0 {
            #expect(try run("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]) == 0)
        }
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        #expect(try run("/bin/chown", [user, dir.path]) == 0)
        let store = dir.child("store")
        let ioasid = CLI.path(of: "ioasid")
        func asUser(_ arguments: [String]) throws -> CLI.Result {
            try CLI.run(["-u", user, "--", ioasid, "--store", store] + arguments, product: "/usr/sbin/runuser")
        }
        let initialised = try asUser(["init", "--capacity", "64", "--system-quota", "8"])
        #expect(initialised.status == 0, "\(initialised.stderr)")
        #expect(try asUser(["alloc", "--set", "1"]).status == 0)
        #expect(chmod(store + "/data.mdb", 0o400) == 0 && chmod(store + "/lock.mdb", 0o400) == 0)
        let before = try Self.snapshot(store)
        for command in [["status"], ["find", "1"], ["set", "ids", "1"], ["verify"]] {
            let result = try asUser(command)
            #expect(result.status == 0, "\(command): \(result.stderr)")
        }
        let refused = try asUser(["--json", "alloc", "--set", "1"])
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(refused.errorCode == "readOnly", "\(refused.stderr)")
        #expect(try Self.snapshot(store) == before)
    }

    @Test("status answers within 50 ms while another process holds a 10-second write transaction")
    func readsBesideALongWrite() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        try Self.populate(path)
        let writer = try CLI.start("ioasid-worker", ["hold-writer", path, "10"])
        defer { writer.process.terminate() }
        let line = String(decoding: writer.out.fileHandleForReading.availableData, as: UTF8.self)
        #expect(line.hasPrefix("writing"), "the writer did not start: \(line)")
        // In this process: open read-only and answer.
        let clock = ContinuousClock()
        var options = IOASIDStore.Options()
        options.readOnly = true
        let started = clock.now
        let status = try IOASIDStore(path: path, options: options).status()
        let elapsed = clock.now - started
        #expect(status.allocated == 4)
        #expect(elapsed < .milliseconds(50), "status took \(elapsed) beside the write")
        // And a separate CLI process, start to exit, while the write is still held.
        let cliStarted = clock.now
        let cli = try CLI.run(["--store", path, "status"])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(clock.now - cliStarted < .seconds(5), "status waited for the writer")
        #expect(writer.process.isRunning, "the writer finished before status was measured")
    }

    /// Runs a program, returning its exit status.
    private func run(_ program: String, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
