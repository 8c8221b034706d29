import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A temporary store driven through the built `ioasid`.
private struct Shell {
    let dir: TemporaryDirectory
    var store: String { dir.child("store") }

    init(capacity: String = "4096") throws {
        dir = try TemporaryDirectory()
        let result = try CLI.run(["--store", dir.child("store"), "init", "--capacity", capacity, "--system-quota", "16"])
        guard result.status == 0 else { throw SupportCheckFailed("init failed: \(result.stderr)") }
    }

    func run(_ args: [String], input: String? = nil) throws -> CLI.Result { try CLI.run(["--store", store] + args, input: input) }
    func run(_ args: String...) throws -> CLI.Result { try run(args) }
    func json(_ args: String...) throws -> [String: Any] {
        let result = try run(["--json"] + args)
        guard result.status == 0, let object = result.json as? [String: Any] else {
            throw SupportCheckFailed("\(args) failed (\(result.status)): \(result.stderr)")
        }
        return object
    }
    func start(_ args: [String]) throws -> CLI.Running { try CLI.start("ioasid", ["--store", store] + args) }
}

/// Runs a long command without blocking a cooperative thread while it runs
/// (its output must fit in the pipes: a few kilobytes).
private struct LongResult {
    let status: Int32
    let stdout: String
    let stderr: String
    var json: Any? { try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) }
}

private func runLong(_ product: String, _ arguments: [String], seconds: Double = 120) async throws -> LongResult {
    let running = try CLI.start(product, arguments)
    _ = await waitForExit(running.process, seconds: seconds)
    return LongResult(
        status: running.process.terminationStatus,
        stdout: String(decoding: running.out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
        stderr: String(decoding: running.err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    )
}

private func pause(_ seconds: Double) async { try? await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }

/// Waits up to `seconds` for `process` to exit; kills it and fails the test otherwise.
///
/// These tests wait with `Task.sleep`, never `Thread.sleep`: a blocked thread is
/// one of the few of Swift concurrency's cooperative pool, which the suite's
/// async tests need (on 2 cores, two blocked threads stall them all).
private func waitForExit(_ process: Process, seconds: Double, sourceLocation: SourceLocation = #_sourceLocation) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        Issue.record("the process did not exit within \(seconds) s", sourceLocation: sourceLocation)
        return false
    }
    return true
}

/// When a process exited, as told by its termination handler.
private final class ExitTime: @unchecked Sendable {
    private let lock = NSLock()
    private var exitedAt: ContinuousClock.Instant?

    func mark() { lock.withLock { exitedAt = ContinuousClock.now } }

    /// The exit's instant, waiting up to `seconds` for the handler (it runs just after `isRunning` turns false).
    func instant(waitingAtMost seconds: Double) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let at = lock.withLock({ exitedAt }) { return at }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return lock.withLock { exitedAt }
    }
}

@Suite("Consumers and owners through the CLI", .serialized)
struct ConsumerCLITests {
    @Test("events list and status show kind, state and lag; an observer never holds an ID back; find says what holds a free-pending ID; a lapsed subscriber is refused with advice and resyncs to the exact state")
    func kindsStatesLapseResync() throws {
        let s = try Shell()
        defer { s.dir.cleanup() }
        #expect(try s.run("events", "subscribe", "audit", "--observe").status == 0)
        #expect(try s.run("events", "subscribe", "kvm", "--max-lag", "6").status == 0)
        let vm = try s.run("set", "create", "--token", "vm:a", "--quota", "10").out
        let id = try s.run("alloc", "--set", vm, "--guest", "101").out
        _ = try s.run("hold", id, "--set", vm, "--holder", "vfio")
        _ = try s.run("free", id, "--set", vm)
        let found = try s.json("find", id)
        #expect(found["state"] as? String == "freePending")
        #expect(found["holders"] as? [String] == ["vfio"] && found["waitingFor"] as? [String] == ["kvm"], "the observer is not listed: \(found)")
        let list = try #require(try s.json("events", "list")["subscribers"] as? [[String: Any]])
        #expect(list.map { $0["name"] as? String } == ["audit", "kvm"])
        #expect(list.map { $0["kind"] as? String } == ["observer", "gating"])
        #expect(list.map { $0["state"] as? String } == ["active", "active"])
        #expect(list.last?["maxLag"] as? Int == 6 && list.last?["lag"] as? Int == 5, "SET_CREATE, ALLOC, BIND, UNBIND, FREE: \(list)")
        let plain = try s.run("status").stdout
        #expect(plain.contains("KIND") && plain.contains("observer") && plain.contains("lapses past 6 events"), "\(plain)")

        _ = try s.run("alloc", "--set", vm, "--count", "2")  // 7 events: past kvm's limit
        let lapsed = try #require(try s.json("status")["subscribers"] as? [[String: Any]])
        #expect(lapsed.map { $0["state"] as? String } == ["active", "lapsed"])
        let refused = try s.run("events", "pending", "kvm")
        #expect(refused.status == 1 && refused.stderr.contains("(subscriberLapsed)") && refused.stderr.contains("events resync"), "\(refused.stderr)")
        let ack = try s.run("--json", "events", "ack", "kvm", "--through", "1")
        #expect(ack.status == 1 && ack.errorCode == "subscriberLapsed")
        #expect(try s.json("find", id)["waitingFor"] == nil, "the lapsed subscriber no longer holds the ID back (the holder still does)")
        _ = try s.run("release", id, "--set", vm, "--holder", "vfio")
        #expect(try s.run("find", id).status == 2, "reclaimed")

        let snapshot = try s.json("events", "resync", "kvm")
        let status = try s.json("status")
        #expect(snapshot["sequence"] as? Int == status["lastSequence"] as? Int)
        #expect(snapshot["epoch"] as? Int == 1 && snapshot["store"] as? String == status["storeID"] as? String)
        let sets = try #require(snapshot["sets"] as? [[String: Any]])
        #expect(sets.map { $0["set"] as? Int } == (status["sets"] as? [[String: Any]])?.map { $0["set"] as? Int })
        let ids = try #require(snapshot["ids"] as? [[String: Any]])
        let expected = try s.json("set", "ids", vm)["ids"] as? [Int]
        #expect(ids.compactMap { $0["id"] as? Int } == expected)
        #expect(try s.run("events", "pending", "kvm").status == 0, "active again")
    }

    @Test("free --wait returns when the last holder releases; with --timeout it exits 1 and changes nothing")
    func freeWait() async throws {
        let s = try Shell()
        defer { s.dir.cleanup() }
        let vm = try s.run("set", "create", "--token", "vm:a", "--quota", "10").out
        let id = try s.run("alloc", "--set", vm).out
        _ = try s.run("hold", id, "--set", vm, "--holder", "vfio")
        _ = try s.run("hold", id, "--set", vm, "--holder", "kvm")
        let timedOut = try s.run("--json", "free", id, "--set", vm, "--wait", "--timeout", "200ms")
        #expect(timedOut.status == 1 && timedOut.errorCode == "timedOut", "\(timedOut.stderr)")
        #expect(try s.json("find", id)["state"] as? String == "freePending")
        let dump = try s.run("dump").stdout
        let waiter = try s.start(["--json", "free", id, "--set", vm, "--wait"])
        await pause(0.3)
        #expect(waiter.process.isRunning, "it returned while two holders hold the ID")
        #expect(try s.run("dump").stdout == dump, "a second free while waiting commits nothing")
        _ = try s.run("release", id, "--set", vm, "--holder", "vfio")
        await pause(0.3)
        #expect(waiter.process.isRunning, "it returned while one holder holds the ID")
        _ = try s.run("release", id, "--set", vm, "--holder", "kvm")
        let released = Date()
        // It returns once the last holder lets go (within 10 s on a loaded machine; 3.5 s was seen under coverage).
        #expect(await waitForExit(waiter.process, seconds: 10), "still waiting \(Date().timeIntervalSince(released)) s after the last release")
        let out = String(decoding: waiter.out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(waiter.process.terminationStatus == 0, "\(out)")
        #expect(out.contains("\"state\":\"free\""), "\(out)")
    }

    @Test("--after holds under 4 concurrent consumer processes killed at random (SIGKILL): no event seen by a follower before its predecessor acknowledged it, none lost")
    func orderingUnderKills() async throws {
        let s = try Shell(capacity: "65536")
        defer { s.dir.cleanup() }
        // a → b, a → c, (b, c) → d: a chain and a fan-in.
        for (name, after) in [("a", [String]()), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])] {
            #expect(try s.run(["events", "subscribe", name] + after.flatMap { ["--after", $0] }).status == 0)
        }
        let vm = try s.run("set", "create", "--token", "vm:churn", "--quota", "60000").out
        let names = ["a", "b", "c", "d"]
        var seed: UInt64 = UInt64(UInt32(truncatingIfNeeded: Date().timeIntervalSince1970.bitPattern))
        var random = SplitMix(seed: seed)
        func consumer(_ name: String, drain: Bool = false) throws -> CLI.Running {
            seed &+= 1
            return try CLI.start("ioasid-worker", ["ordered-consumer", s.store, name, s.dir.child(name + ".log"), "\(seed)"] + (drain ? ["drain"] : []))
        }
        func stderr(_ running: CLI.Running) -> String {
            String(decoding: running.err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
        var running = try Dictionary(uniqueKeysWithValues: names.map { ($0, try consumer($0)) })
        // At least 12 kills, however slow the machine: a producer that finishes first is started again.
        var producer = try CLI.start("ioasid-worker", ["churn", s.store, vm, "2"]).process
        var kills = 0
        while producer.isRunning || kills < 12 {
            if !producer.isRunning {
                #expect(producer.terminationStatus == 0)
                producer = try CLI.start("ioasid-worker", ["churn", s.store, vm, "1"]).process
            }
            await pause(Double(random.next() % 150 + 20) / 1000)
            let victim = names[Int(random.next() % 4)]
            if let old = running[victim] {
                let process = old.process
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                #expect(process.terminationReason == .uncaughtSignal, "\(victim) exited \(process.terminationStatus) before the kill: \(stderr(old))")
                kills += 1
            }
            running[victim] = try consumer(victim)
        }
        #expect(producer.terminationStatus == 0)
        for consumer in running.values {
            kill(consumer.process.processIdentifier, SIGKILL)
            consumer.process.waitUntilExit()
        }
        // Drain in an order that respects --after, in rounds: the last follower's
        // acknowledgements reclaim IDs, which commits RECLAIM events for everyone.
        var caughtUp = false
        for _ in 0..<20 where !caughtUp {
            for name in names {
                let drain = try consumer(name, drain: true)
                #expect(await waitForExit(drain.process, seconds: 60))
                #expect(drain.process.terminationStatus == 0, "\(name)'s drain exited \(drain.process.terminationStatus): \(stderr(drain))")
            }
            let status = try s.json("status")
            let acknowledged = (status["subscribers"] as? [[String: Any]] ?? []).compactMap { $0["acknowledgedThrough"] as? Int }
            caughtUp = acknowledged.count == 4 && acknowledged.allSatisfy { $0 == status["lastSequence"] as? Int }
        }
        #expect(caughtUp, "the consumers never caught up")
        let last = try #require(try s.json("status")["lastSequence"] as? Int)
        #expect(last > 100, "too little traffic to mean anything: \(last) events")
        #expect(kills >= 10)
        for name in names {
            let log = try String(contentsOfFile: s.dir.child(name + ".log"), encoding: .utf8)
            #expect(!log.contains("VIOLATION"), "\(log.split(separator: "\n").filter { $0.hasPrefix("VIOLATION") }.prefix(3))")
            let seen = Set(log.split(separator: "\n").compactMap { Int($0) })
            let missing = Set(1...last).subtracting(seen)
            #expect(missing.isEmpty, "\(name) never saw \(missing.count) events, e.g. \(missing.sorted().prefix(5)) (seed \(seed))")
        }
        #expect(try s.run("verify").status == 0)
    }

    @Test("consume acknowledges a batch only when the command exits 0: a failed or killed command gets the same batch again; consume killed mid-batch acknowledges nothing; SIGTERM stops it cleanly")
    func consumeRedelivers() async throws {
        let s = try Shell()
        defer { s.dir.cleanup() }
        _ = try s.run("events", "subscribe", "agent")
        let vm = try s.run("set", "create", "--token", "vm:a", "--quota", "10").out
        _ = try s.run("alloc", "--set", vm, "--count", "3")
        let log = s.dir.child("log")
        let marker = s.dir.child("marker")
        // First run fails (exit 3), second is killed (SIGKILL), third succeeds.
        let script = """
            cat >> '\(log)'; echo --- >> '\(log)'
            n=$(cat '\(marker)' 2>/dev/null || echo 0); echo $((n + 1)) > '\(marker)'
            [ "$n" = 0 ] && exit 3
            [ "$n" = 1 ] && kill -KILL $$
            exit 0
            """
        let result = try await runLong("ioasid", ["--store", s.store, "--json", "events", "consume", "agent", "--once", "--max-backoff", "100ms", "--", "sh", "-c", script])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("exited with status 3") && result.stderr.contains("killed by signal 9"), "\(result.stderr)")
        let summary = try #require(result.json as? [String: Any])
        #expect(summary["failures"] as? Int == 2 && summary["batches"] as? Int == 1 && summary["acknowledged"] as? Int == 4)
        let batches = try String(contentsOfFile: log, encoding: .utf8).components(separatedBy: "---\n").filter { !$0.isEmpty }
        #expect(batches.count == 3)
        #expect(Set(batches).count == 1, "the same batch each time")
        let sequences = batches[0].split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["sequence"] as? Int
        }
        #expect(sequences == [1, 2, 3, 4])
        #expect(try s.json("events", "list")["subscribers"].flatMap { ($0 as? [[String: Any]])?.first?["acknowledgedThrough"] as? Int } == 4)

        // consume itself killed while its command runs: nothing acknowledged, the next consume gets the batch.
        _ = try s.run("alloc", "--set", vm)
        let slow = try s.start(["events", "consume", "agent", "--", "sh", "-c", "cat > '\(s.dir.child("slow"))'; sleep 30"])
        let deadline = Date().addingTimeInterval(10)
        while (try? String(contentsOfFile: s.dir.child("slow"), encoding: .utf8))?.contains("\"sequence\":5") != true, Date() < deadline {
            await pause(0.02)
        }
        kill(slow.process.processIdentifier, SIGKILL)
        slow.process.waitUntilExit()
        let again = try s.run("events", "consume", "agent", "--once", "--", "sh", "-c", "cat > '\(s.dir.child("again"))'")
        #expect(again.status == 0)
        #expect(try String(contentsOfFile: s.dir.child("again"), encoding: .utf8).contains("\"sequence\":5"), "redelivered after consume was killed")

        // SIGTERM: the running command gets it; consume exits 0 with its summary.
        _ = try s.run("alloc", "--set", vm)
        let term = try s.start(["--json", "events", "consume", "agent", "--", "sh", "-c", "cat > /dev/null; trap 'exit 0' TERM; sleep 5 & wait"])
        await pause(0.5)
        kill(term.process.processIdentifier, SIGTERM)
        #expect(await waitForExit(term.process, seconds: 10))
        #expect(term.process.terminationStatus == 0)
        let out = String(decoding: term.out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(out.contains("\"acknowledgedThrough\":6"), "the command exited 0 on SIGTERM, so its batch is acknowledged: \(out)")
    }

    @Test("consume's command starts with SIGPIPE, SIGTERM and SIGINT not ignored (a forwarded SIGTERM ends it) and inherits only its standard streams")
    func consumeCommandEnvironment() async throws {
        let s = try Shell()
        defer { s.dir.cleanup() }
        _ = try s.run("events", "subscribe", "agent")
        let vm = try s.run("set", "create", "--token", "vm:a", "--quota", "10").out
        _ = try s.run("alloc", "--set", vm)
        // The descriptors the command's shell holds: 0, 1 and 2 only (not the store's files, not a pipe end).
        // And the signals it ignores: not SIGPIPE (which ioasid ignores), SIGTERM or SIGINT.
        let listed = try s.run("events", "consume", "agent", "--once", "--", "sh", "-c", "cat > /dev/null; ls /proc/$$/fd; grep SigIgn /proc/$$/status")
        #expect(listed.status == 0, "\(listed.stderr)")
        let lines = listed.stdout.split(separator: "\n")
        let open = lines.filter { !$0.isEmpty && $0.allSatisfy(\.isNumber) }.map(String.init)
        #expect(open.sorted() == ["0", "1", "2"], "descriptors inherited by the command: \(open)")
        let ignored = try #require(lines.first { $0.hasPrefix("SigIgn:") }.flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) })
        for signalNumber in [SIGPIPE, SIGTERM, SIGINT] {
            #expect(ignored & (1 << UInt64(signalNumber - 1)) == 0, "the command started with signal \(signalNumber) ignored (SigIgn \(String(ignored, radix: 16)))")
        }

        // No trap: `sleep` ends on the forwarded SIGTERM only if it did not inherit consume's SIG_IGN.
        _ = try s.run("alloc", "--set", vm)
        let started = s.dir.child("started")
        let term = try s.start(["events", "consume", "agent", "--", "sh", "-c", "cat > /dev/null; touch '\(started)'; exec sleep 30"])
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: started), ContinuousClock.now < deadline { await pause(0.02) }
        // The exit is timed by Foundation's own thread, not by this test's polling: other suites'
        // blocking runs can hold the cooperative pool's two threads for seconds on 2 cores.
        let exit = ExitTime()
        term.process.terminationHandler = { _ in exit.mark() }
        // A handler set after the exit never runs: say so rather than blame the signal.
        try #require(term.process.isRunning, "events consume exited before SIGTERM was sent")
        let sent = ContinuousClock.now
        kill(term.process.processIdentifier, SIGTERM)
        #expect(await waitForExit(term.process, seconds: 40))
        let exitedAt = await exit.instant(waitingAtMost: 5)
        let took = exitedAt.map { $0 - sent }
        #expect(took.map { $0 < .seconds(5) } == true, "the command ignored the forwarded SIGTERM (it slept on): exit \(took.map { "\($0)" } ?? "not seen") after SIGTERM")
        let out = String(decoding: term.out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(out.contains("1 failed run delivered again"), "\(out)")
    }

    @Test("reap through the CLI: an expired lease and an owner process killed with SIGKILL are reaped, a live owner's set is not; two concurrent reaps free each set once")
    func reapThroughCLI() async throws {
        let s = try Shell(capacity: "65536")
        defer { s.dir.cleanup() }
        _ = try s.run("events", "subscribe", "audit", "--observe")
        let child = try CLI.start("/bin/sleep", ["60"]).process
        let live = try CLI.start("/bin/sleep", ["60"]).process
        defer {
            kill(live.processIdentifier, SIGKILL)
            live.waitUntilExit()
        }
        let owned = try s.run("set", "create", "--token", "vm:child", "--quota", "10", "--owner-pid", "\(child.processIdentifier)").out
        let alive = try s.run("set", "create", "--token", "vm:live", "--quota", "10", "--owner-pid", "\(live.processIdentifier)").out
        var leased: [String] = []
        for index in 0..<6 {
            let set = try s.run("set", "create", "--token", "vm:lease\(index)", "--quota", "100", "--lease", "1ms").out
            _ = try s.run("alloc", "--set", set, "--count", "20")
            leased.append(set)
        }
        _ = try s.run("alloc", "--set", owned, "--count", "3")
        // A held ID keeps its reaped set destroy-pending: a reap that reaped it again would show.
        let heldID = try #require(try s.json("set", "ids", leased[0])["ids"] as? [Int]).first.map(String.init) ?? ""
        _ = try s.run("hold", heldID, "--set", leased[0], "--holder", "vfio")
        let renewed = try s.run("set", "create", "--token", "vm:renewed", "--quota", "10", "--lease", "1h").out
        #expect(try s.run("set", "renew", renewed).status == 0)
        let noLease = try s.run("--json", "set", "renew", alive)
        #expect(noLease.status == 64 && noLease.errorCode == "invalidArgument")
        let ghost = try s.run("--json", "set", "create", "--token", "vm:ghost", "--quota", "1", "--owner-pid", "999999999")
        #expect(ghost.status == 64, "\(ghost.stderr)")

        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        await pause(0.01)
        let first = try s.start(["--json", "reap"])
        let second = try s.start(["--json", "reap"])
        var reaped: [Int] = []
        for running in [first, second] {
            let out = running.out.fileHandleForReading.readDataToEndOfFile()
            running.process.waitUntilExit()
            #expect(running.process.terminationStatus == 0)
            let object = try #require(try JSONSerialization.jsonObject(with: out) as? [String: Any])
            reaped += (object["reaped"] as? [[String: Any]] ?? []).compactMap { $0["set"] as? Int }
        }
        #expect(reaped.sorted() == ([owned] + leased).compactMap { Int($0) }.sorted(), "each set reaped exactly once: \(reaped)")
        let events = try #require(try s.json("events", "pending", "audit")["events"] as? [[String: Any]])
        for set in [owned] + leased {
            let mine = events.filter { ($0["set"] as? Int).map(String.init) == set }
            #expect(mine.filter { $0["kind"] as? String == "SET_EXPIRED" }.count == 1)
            #expect(mine.filter { $0["kind"] as? String == "FREE" }.count == (set == owned ? 3 : 20))
            #expect(mine.filter { $0["kind"] as? String == "SET_FREE" }.count == 1)
        }
        let remaining = try #require(try s.json("set", "list")["sets"] as? [[String: Any]]).compactMap { $0["token"] as? String }
        #expect(remaining.sorted() == ["system", "vm:lease0", "vm:live", "vm:renewed"].sorted(), "vm:lease0 waits for its held ID")
        #expect(try s.run("reap").out == "nothing to reap")
        _ = try s.run("release", heldID, "--set", leased[0], "--holder", "vfio")
        #expect(try s.run("set", "show", leased[0]).status == 2, "destroyed once its last ID was reclaimed")
        #expect(try s.run("verify").status == 0)
    }

    @Test("restore starts a new epoch; acknowledging a sequence the restored store never had is refused (storeRestored, exit 1) with advice")
    func restoreThroughCLI() throws {
        let s = try Shell()
        defer { s.dir.cleanup() }
        _ = try s.run("events", "subscribe", "kvm")
        let vm = try s.run("set", "create", "--token", "vm:a", "--quota", "10").out
        _ = try s.run("alloc", "--set", vm)
        #expect(try s.run("backup", s.dir.child("backup")).status == 0)
        _ = try s.run("alloc", "--set", vm, "--count", "3")
        let restored = s.dir.child("restored")
        let result = try CLI.run(["--json", "restore", s.dir.child("backup"), restored])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(result.json as? [String: Any])
        let epoch = try #require(object["epoch"] as? Int)
        #expect(epoch > 1 && object["lastSequence"] as? Int == 2)
        let ack = try CLI.run(["--store", restored, "events", "ack", "kvm", "--through", "5"])
        #expect(ack.status == 1 && ack.stderr.contains("(storeRestored)") && ack.stderr.contains("resync"), "\(ack.stderr)")
        _ = try CLI.run(["--store", restored, "alloc", "--set", vm])
        let tail = try CLI.run(["--store", restored, "events", "tail", "kvm"]).stdout.split(separator: "\n")
        let last = try #require(tail.last.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(last["sequence"] as? Int == 3 && last["epoch"] as? Int == epoch, "sequence 3 again, in a new epoch: \(last)")
        _ = try CLI.run(["--store", restored, "alloc", "--set", vm, "--count", "3"])
        let exact = try CLI.run(["--store", restored, "events", "ack", "kvm", "--through", "5", "--epoch", "1"])
        #expect(exact.status == 1 && exact.stderr.contains("(storeRestored)"), "event 5 of epoch 1 is gone though the store has an event 5 now: \(exact.stderr)")
        #expect(try CLI.run(["--store", restored, "events", "ack", "kvm", "--through", "5", "--epoch", "\(epoch)"]).status == 0)
        let exists = try CLI.run(["--json", "restore", s.dir.child("backup"), restored])
        #expect(exists.status == 64)
    }

    @Test("The 1M churn's small form: with one lapsed and one live subscriber the store stays under twice its size without subscribers (Tools/churn)")
    func churnStaysSmall() async throws {
        let result = try await runLong("/bin/bash", [SwiftSnippet.packageRoot + "/Tools/churn", "--ops", "20000", "--worker", CLI.path(of: "ioasid-worker")])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("size ratio:"), "\(result.stdout)")
    }
}
