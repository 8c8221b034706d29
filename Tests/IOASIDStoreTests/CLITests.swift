import Foundation
import IOASIDMigrations
import IOASIDStore
import LMDB
import IOASIDTestSupport
import Testing

@Suite("ioasid command-line tool")
struct CLITests {
    /// Runs `ioasid --store <tmp>/store ARGS`.
    struct Session {
        let dir: TemporaryDirectory
        var store: String { dir.child("store") }

        init() throws { dir = try TemporaryDirectory() }

        func run(_ args: String...) throws -> CLI.Result {
            try CLI.run(["--store", store] + args)
        }

        func json(_ args: String...) throws -> CLI.Result {
            try CLI.run(["--store", store, "--json"] + args)
        }
    }

    @Test("init, then commands that answer with one number print just that number")
    func plainNumbers() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        #expect(try s.run("init", "--capacity", "4096", "--system-quota", "100").status == 0)
        let set = try s.run("set", "create", "--token", "vm:1", "--quota", "3")
        #expect(set.status == 0)
        #expect(set.out == "2")
        #expect(try s.run("alloc", "--set", "2").out == "1")
        #expect(try s.run("alloc", "--set", "2", "--min", "10", "--max", "20", "--data", "c0ffee").out == "10")
        #expect(try s.run("find-set", "10").out == "2")
        let found = try s.json("find", "10", "--set", "2")
        let object = try #require(found.json as? [String: Any])
        #expect(object["data"] as? String == "c0ffee")
        #expect(object["set"] as? Int == 2)
        #expect(try s.run("set", "ids", "2").out == "1\n10")
        #expect(try s.run("capacity").out == "4096")
    }

    @Test("--json prints sorted keys; status lists sets")
    func jsonStatus() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        _ = try s.run("init")
        let status = try s.json("status")
        #expect(status.status == 0)
        #expect(status.out.hasPrefix("{\"allocated\":0,\"capacity\":1048576,\"epoch\":1,\"freePending\":0,\"lastSequence\":0,\"path\":"))
        let object = try #require(status.json as? [String: Any])
        #expect(object["schema"] as? Int == Int(IOASIDStore.schemaVersion))
        #expect((object["storeID"] as? String)?.count == 32)
        let plain = try s.run("status")
        #expect(plain.stdout.contains("quota:        32768 reserved by 1 set, 1015807 unreserved"))
        #expect(plain.stdout.contains("schema:       \(IOASIDStore.schemaVersion)"))
    }

    @Test("Refusals exit 1 with their code, unknown sets and IDs exit 2")
    func exitCodes() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        _ = try s.run("init", "--capacity", "64", "--system-quota", "8")
        _ = try s.run("set", "create", "--token", "vm:a", "--quota", "1")
        _ = try s.run("alloc", "--set", "2")
        let cases: [([String], Int32, String)] = [
            (["alloc", "--set", "2"], 1, "quotaExceeded"),
            (["set", "create", "--token", "vm:a", "--quota", "1"], 1, "duplicateToken"),
            (["set", "create", "--token", "vm:b", "--quota", "60"], 1, "capacityExhausted"),
            (["set", "adjust", "2", "--quota", "100"], 1, "capacityExhausted"),
            (["find", "1", "--set", "1"], 1, "wrongSet"),
            (["free", "1", "--set", "1"], 1, "wrongSet"),
            (["set", "free", "1", "--destroy"], 1, "systemSetProtected"),
            (["alloc", "--set", "1", "--min", "5", "--max", "5"], 0, ""),
            (["alloc", "--set", "1", "--min", "5", "--max", "5"], 1, "rangeExhausted"),
            (["capacity", "4"], 1, "capacityInUse"),
            (["init"], 1, "alreadyInitialized"),
            (["find", "40"], 2, "noSuchID"),
            (["find-set", "40"], 2, "noSuchID"),
            (["set", "show", "9"], 2, "noSuchSet"),
            (["alloc", "--set", "9"], 2, "noSuchSet"),
            (["alloc", "--set", "1", "--max", "64"], 64, "invalidArgument"),
        ]
        for (args, status, code) in cases {
            let before = try CLI.run(["--store", s.store, "--json", "status"]).stdout
            let result = try CLI.run(["--store", s.store, "--json"] + args)
            #expect(result.status == status, "\(args): \(result.stderr)")
            if !code.isEmpty {
                #expect(result.errorCode == code, "\(args): \(result.stderr)")
                #expect(try CLI.run(["--store", s.store, "--json", "status"]).stdout == before, "\(args) changed the store")
            }
        }
    }

    @Test("Bad arguments are usage errors (exit 64)", arguments: [
        ["alloc", "--set", "2", "--min", "9", "--max", "3"],
        ["alloc", "--set", "2", "--data", "xyz"],
        ["alloc", "--set", "2", "--min", "0"],
        ["set", "create", "--token", "vm", "--quota", "0"],
        ["alloc"],
        ["frobnicate"],
        ["init", "--capacity", "1"],
    ])
    func usageErrors(args: [String]) throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        _ = try s.run("init")
        let before = try s.json("status").stdout
        let result = try CLI.run(["--store", s.store] + args)
        #expect(result.status == 64, "\(args): \(result.stderr)")
        #expect(try s.json("status").stdout == before)
    }

    @Test("A missing, newer or corrupt store exits 3")
    func unusableStores() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        let missing = try s.json("status")
        #expect(missing.status == 3)
        #expect(missing.errorCode == "notInitialized")
        #expect(!FileManager.default.fileExists(atPath: s.store), "a read command must not create a store")

        _ = try s.run("init")
        // A history with a gap (a damaged key reads as a large number) is damage, not a newer schema.
        let next = UInt32(Migrations.all.count + 1)
        let unrecorded = try recordMigration(next + 1, in: s.store)
        let gap = try s.json("status")
        #expect(gap.status == 3)
        #expect(gap.errorCode == "corruptStore", "\(gap.stderr)")
        #expect(gap.stderr.contains("data.mdb"), "the message names the file: \(gap.stderr)")
        try unrecorded()
        // Record the next migration, as a newer version would: contiguous, so newer.
        _ = try recordMigration(next, in: s.store)
        let newer = try s.json("status")
        #expect(newer.status == 3)
        #expect(newer.errorCode == "newerSchema")

        let corrupt = s.dir.child("corrupt")
        try FileManager.default.createDirectory(atPath: corrupt, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        #expect(FileManager.default.createFile(atPath: corrupt + "/data.mdb", contents: Data(repeating: 0x5a, count: 16384), attributes: [.posixPermissions: 0o600]))
        let bad = try CLI.run(["--store", corrupt, "--json", "status"])
        #expect(bad.status == 3)
        #expect(bad.errorCode == "corruptStore")
        #expect(bad.stderr.contains("data.mdb"), "the message names the file: \(bad.stderr)")
        // A store directory others can read is refused, with the chmod that fixes it.
        _ = chmod(corrupt, 0o755)
        let open = try CLI.run(["--store", corrupt, "--json", "status"])
        #expect(open.status == 3)
        #expect(open.errorCode == "accessDenied")
        #expect(open.stderr.contains("chmod 700"), "\(open.stderr)")
    }

    /// Records migration `number` in the store's history, as the version that
    /// has it would; returns what removes the record again.
    private func recordMigration(_ number: UInt32, in store: String) throws -> () throws -> Void {
        let env = try Environment.open(path: store)
        let history = try env.openDatabase(named: StoreLayout.historyDatabase)
        try env.write { txn in
            _ = try txn.put(Array("future".utf8), forKey: StoreLayout.migrationKey(number), in: history)
        }
        return { try env.write { txn in _ = try txn.delete(StoreLayout.migrationKey(number), in: history) } }
    }

    @Test("events and holds: subscribe, tail, ack, hold, release, with their exit codes")
    func eventsAndHolds() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        _ = try s.run("init")
        #expect(try s.run("events", "subscribe", "kvm", "--kind", "free", "--kind", "reclaim").status == 0)
        #expect(try s.run("events", "subscribe", "kvm").status == 1)
        #expect(try s.run("events", "subscribe", "x", "--set", "9").status == 2)
        #expect(try s.run("events", "subscribe", "y", "--kind", "nope").status == 64)
        let id = try s.run("alloc", "--set", "1").out
        #expect(try s.run("hold", id, "--set", "1", "--holder", "vfio").status == 0)
        #expect(try s.run("free", id, "--set", "1").out == "freed \(id) (free-pending)")
        #expect(try s.json("hold", id, "--set", "1", "--holder", "other").errorCode == "idFreePending")
        let tail = try s.run("events", "tail", "kvm")
        let lines = tail.out.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("\"kind\":\"FREE\"") == true)
        #expect(try s.run("events", "tail", "kvm").out == tail.out, "tail without --ack delivers again")
        #expect(try s.json("events", "ack", "kvm", "--through", "9").status == 64)
        #expect(try s.run("events", "ack", "kvm", "--through", "1").status == 0)
        #expect(try s.run("release", id, "--set", "1", "--holder", "vfio").out == "vfio released \(id) (free)")
        #expect(try s.json("release", id, "--set", "1", "--holder", "vfio").errorCode == "noSuchID")
        let pending = try s.run("events", "pending", "kvm").out
        #expect(pending.hasPrefix("#2 RECLAIM set 1 id \(id) "), "\(pending)")
        let pendingJSON = try #require(try s.json("events", "pending", "kvm").json as? [String: Any])
        #expect((pendingJSON["events"] as? [[String: Any]])?.first?["kind"] as? String == "RECLAIM")
        let status = try #require(try s.json("status").json as? [String: Any])
        let subscribers = try #require(status["subscribers"] as? [[String: Any]])
        #expect(subscribers.first?["lag"] as? Int == 1)
        #expect(try s.run("events", "unsubscribe", "kvm").status == 0)
        #expect(try s.json("events", "pending", "kvm").errorCode == "noSuchSubscriber")
        #expect(try s.run("events", "unsubscribe", "kvm").status == 2)
    }

    @Test("dump decodes every record and flags a damaged one with its bytes; migrate validate checks an export without a store and refuses a tampered one")
    func dumpAndValidate() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        _ = try s.run("init", "--capacity", "4096", "--system-quota", "8")
        _ = try s.run("set", "create", "--token", "vm:a", "--quota", "4")
        #expect(try s.run("alloc", "--set", "2", "--guest", "101", "--data", "0a0b").out == "1")
        let dump = try s.run("dump")
        #expect(dump.status == 0, "\(dump.stderr)")
        #expect(dump.stdout.contains("ids 1: set=2 state=allocated guest=101 data=0a0b"), "\(dump.stdout)")
        #expect(dump.stdout.contains("control set 2: token=vm:a quota=4 held=1 freePending=0 flags=-"))
        #expect(dump.stdout.contains("guests set 2 guest 101: id=1"))
        #expect(!dump.stdout.contains("DAMAGED"))

        let file = s.dir.child("vm.export")
        #expect(try s.run("migrate", "export", "--set", "2", "--out", file).status == 0)
        let valid = try CLI.run(["migrate", "validate", file])
        #expect(valid.status == 0, "\(valid.stderr)")
        #expect(valid.out.hasPrefix("valid: export "), "\(valid.out)")
        let text = try String(contentsOfFile: file, encoding: .utf8)
        try text.replacingOccurrences(of: "\"data\":\"0a0b\"", with: "\"data\":\"0a0c\"").write(toFile: file, atomically: true, encoding: .utf8)
        let tampered = try CLI.run(["--json", "migrate", "validate", file])
        #expect(tampered.status == 1)
        #expect(tampered.errorCode == "exportChecksumMismatch", "\(tampered.stderr)")
        #expect(try s.run("migrate", "abort", "2").status == 0)

        // Flip one byte of ID 1's record without resealing it: dump goes on and shows it.
        do {
            let env = try Environment.open(path: s.store)
            let ids = try env.openDatabase(named: StoreLayout.DB.ids.rawValue)
            try env.write { txn in
                var value = try #require(try txn.get(StoreLayout.idKey(1), in: ids))
                value[5] ^= 0x01
                try txn.put(value, forKey: StoreLayout.idKey(1), in: ids)
            }
        }
        let damaged = try s.run("dump")
        #expect(damaged.status == 0, "\(damaged.stderr)")
        #expect(damaged.stdout.contains("ids 1: DAMAGED (checksum mismatch) [key 00000001 value "), "\(damaged.stdout)")
        #expect(damaged.stdout.contains("guests set 2 guest 101: id=1"), "the records after the damaged one are dumped too")
        let json = try s.json("dump")
        let line = try #require(json.stdout.split(separator: "\n").first { $0.contains("\"database\":\"ids\"") })
        #expect(line.contains("\"problem\":\"checksum mismatch\"") && line.contains("\"rawValue\":"), "\(line)")
    }

    @Test("$IOASID_STORE chooses the store when --store is absent")
    func environmentVariable() throws {
        let s = try Session()
        defer { s.dir.cleanup() }
        #expect(try CLI.run(["init"], environment: ["IOASID_STORE": s.store]).status == 0)
        #expect(try CLI.run(["alloc", "--set", "1"], environment: ["IOASID_STORE": s.store]).out == "1")
    }

    @Test("--help documents the exit codes; demo runs")
    func helpAndDemo() throws {
        let help = try CLI.run(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("64    usage error"))
        let demo = try CLI.run(["demo"])
        #expect(demo.status == 0, "\(demo.stderr)")
        #expect(demo.stdout.contains("allocation 1001 refused — quotaExceeded"))
        #expect(demo.stdout.contains("999 IDs freed (one FREE each), set destroyed: false"))
        #expect(demo.stdout.contains("every ID reclaimed, set gone: true"))
        #expect(demo.stdout.contains("is free-pending: the host asking for exactly"))
        #expect(demo.stdout.contains("the destination already uses host IDs 1, 2, 3; import remapped 1: 2→"))
        #expect(demo.stdout.contains("importing the same export again is refused — exportAlreadyImported"))
    }
}

@Suite("Several processes")
struct MultiProcessTests {
    @Test("Two processes allocating from one store at once never hand out the same ID")
    func concurrentAllocators() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        do {
            let store = try IOASIDStore(path: path)
            _ = try store.createSet(token: "vm:shared", quota: 1000)
        }
        let workers = try (0..<2).map { _ in try CLI.start("ioasid-worker", ["alloc", path, "2", "300"]) }
        var seen: [UInt32] = []
        for worker in workers {
            let out = worker.out.fileHandleForReading.readDataToEndOfFile()
            worker.process.waitUntilExit()
            #expect(worker.process.terminationStatus == 0)
            seen += String(decoding: out, as: UTF8.self).split(separator: "\n").compactMap { UInt32($0) }
        }
        #expect(seen.count == 600)
        #expect(Set(seen).count == 600, "an ID was handed out twice")
        #expect(Set(seen) == Set(1...600), "lowest-free allocation across processes")
        let store = try IOASIDStore(path: path)
        #expect(try store.set(2).allocated == 600)
    }

    @Test("Several processes allocating and freeing for a bounded time never hold the same ID at once")
    func churningProcesses() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        do {
            let store = try IOASIDStore(path: path)
            _ = try store.createSet(token: "vm:shared", quota: 100_000)  // freed IDs stay pending for "audit"
            try store.subscribe("audit")
        }
        // Each worker stamps its IDs with its pid and checks the stamp before freeing (exit 2 if another had it).
        let workers = try (0..<3).map { _ in try CLI.start("ioasid-worker", ["churn", path, "2", "1.5"]) }
        var handed = 0
        for worker in workers {
            let out = worker.out.fileHandleForReading.readDataToEndOfFile()
            worker.process.waitUntilExit()
            #expect(worker.process.terminationStatus == 0, "\(String(decoding: worker.err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            handed += String(decoding: out, as: UTF8.self).split(separator: "\n").count
        }
        #expect(handed > 100)
        let store = try IOASIDStore(path: path)
        #expect(try store.verify().isClean)
        let events = try store.pendingEvents(for: "audit")
        #expect(events.filter { $0.kind == .alloc }.count == handed, "one ALLOC per allocation, across processes")
    }

    @Test("A reader killed with SIGKILL does not pin the file's growth: stale readers are cleared at open")
    func staleReader() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let path = dir.child("store")
        do { _ = try IOASIDStore(path: path).createSet(token: "vm", quota: 100) }
        let reader = try CLI.start("ioasid-worker", ["hold-reader", path])
        _ = CrashReplayTests.readLines(reader.out.fileHandleForReading, count: 1)
        kill(reader.process.processIdentifier, SIGKILL)
        reader.process.waitUntilExit()
        // A new process opens the store (clearing the dead reader's slot) and churns.
        let churn = try CLI.start("ioasid-worker", ["churn", path, "2", "1.5"])
        churn.process.waitUntilExit()
        #expect(churn.process.terminationStatus == 0)
        let size = try FileManager.default.attributesOfItem(atPath: path + "/data.mdb")[.size] as? Int ?? 0
        // Pinned by a stale snapshot, every commit's pages would stay allocated
        // (hundreds of commits × several pages); with the slot cleared, pages are reused.
        #expect(size < 1 << 20, "data file grew to \(size) bytes")
    }
}
