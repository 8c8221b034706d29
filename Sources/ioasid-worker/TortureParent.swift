import Foundation
import IOASIDStore
import IOASIDTestSupport

/// The crash-torture parent: starts the child again and again, kills it with
/// SIGKILL at random moments or lets it kill itself at a named failpoint, then
/// reopens the store and checks that every invariant holds (`verify`) and that
/// everything the journal says succeeded is still there.
struct TortureParent {
    var kills = 200
    var dir = NSTemporaryDirectory() + "ioasid-crash-torture-\(getpid())"
    var seed = UInt64(UInt32.random(in: 0 ... .max))
    var verbose = false

    init(arguments: [String]) throws {
        var rest = arguments[...]
        while let arg = rest.popFirst() {
            switch arg {
            case "--kills": kills = Int(rest.popFirst() ?? "") ?? kills
            case "--dir": dir = rest.popFirst() ?? dir
            case "--seed": seed = UInt64(rest.popFirst() ?? "") ?? seed
            case "--verbose": verbose = true
            default: fail("usage: ioasid-worker torture-parent [--kills N] [--dir DIR] [--seed S] [--verbose]", code: 64)
            }
        }
    }

    func run() throws -> Int32 {
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let storePath = dir + "/store", journalPath = dir + "/journal"
        do {
            var options = IOASIDStore.Options()
            options.capacity = 4096
            options.systemQuota = 64
            let store = try IOASIDStore(path: storePath, options: options)
            try store.subscribe("torture")
        }
        var rng = SplitMix(seed: seed)
        var reader = JournalReader(path: journalPath)
        var model = try Model(snapshotOf: storePath)
        var violations: [String] = []
        var modes: [String: Int] = [:]
        var operations = 0
        // Concurrent async allocation bursts journaled, and kills that landed inside one.
        var bursts = 0, killedMidBurst = 0
        let started = Date()
        let self_ = CommandLine.arguments[0]
        for round in 0..<kills {
            let mode: String
            var arguments = ["torture", storePath, journalPath, String(rng.next())]
            switch rng.next() % 8 {
            case 0: mode = "before-commit"
            case 1: mode = "after-commit"
            case 2: mode = "before-ack"
            case 3: mode = "mid-import"
            default: mode = "random"
            }
            if mode != "random" { arguments.append("\(mode):\(rng.next() % 40 + 1)") }
            let child = Process()
            child.executableURL = URL(fileURLWithPath: self_)
            child.arguments = arguments
            child.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            child.standardError = errors
            try child.run()
            // Random kills land anywhere from start-up to deep in the workload; failpoint
            // runs get time to reach their point and are killed anyway if they do not.
            let delay = mode == "random" ? Double(rng.next() % 120 + 5) / 1000 : 1.5
            let deadline = Date().addingTimeInterval(delay)
            while child.isRunning && Date() < deadline { usleep(1000) }
            var how = mode
            if child.isRunning {
                kill(child.processIdentifier, SIGKILL)
                if mode != "random" { how = "timeout" }
            }
            child.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            modes[how, default: 0] += 1
            if child.terminationReason != .uncaughtSignal {
                violations.append("round \(round): the child exited with status \(child.terminationStatus): \(stderr)")
            }
            let lines = reader.newLines()
            operations += lines.filter { $0.hasPrefix("D ") && !$0.hasPrefix("D allocs-end") }.count
            bursts += lines.filter { $0.hasPrefix("I allocs ") }.count
            let found = try model.check(after: lines, storePath: storePath)
            if model.inFlightAtKill == "allocs" { killedMidBurst += 1 }
            violations += found.map { "round \(round) (\(how)): \($0)" }
            if verbose || !found.isEmpty {
                try? FileHandle.standardError.write(contentsOf: Data("round \(round) \(how): \(lines.count) journal lines, \(found.count) violations\n".utf8))
            }
            model = try Model(snapshotOf: storePath)
            if (round + 1) % 500 == 0 {
                try? FileHandle.standardError.write(contentsOf: Data("crash-torture: \(round + 1)/\(kills) kills, \(operations) operations, \(violations.count) violations\n".utf8))
            }
        }
        let elapsed = Date().timeIntervalSince(started)
        for v in violations.prefix(50) { print("violation: \(v)") }
        let breakdown = modes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        print(String(
            format: "crash-torture: kills=%d operations=%d violations=%d seed=%llu (%@) bursts=%d mid-burst=%d in %.0f s",
            kills, operations, violations.count, seed, breakdown, bursts, killedMidBurst, elapsed
        ))
        if violations.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
        return violations.isEmpty ? 0 : 2
    }
}

/// What the store must hold: a snapshot taken after the previous round, with
/// this round's journaled operations applied.
struct Model {
    enum IDState: Equatable { case allocated(set: UInt32, guest: UInt32?), freed(set: UInt32) }
    struct SetState: Equatable { var token: String; var quota: UInt32; var alive: Bool; var frozen: Bool }

    var ids: [UInt32: IDState] = [:]
    var sets: [UInt32: SetState] = [:]
    var holds: Set<String> = []  // "id holder"
    var ack: UInt64 = 0
    var saw: [UInt64: String] = [:]  // sequence → "KIND id"
    /// The operation the last ``check(after:storePath:)`` found in flight at the kill ("" if none).
    private(set) var inFlightAtKill = ""

    init(snapshotOf path: String) throws {
        let store = try openExisting(path)
        for set in try store.sets() {
            sets[set.id.rawValue] = SetState(token: set.token, quota: set.quota, alive: !set.isDestroyPending, frozen: set.isFrozen)
            for id in try store.ids(in: set.id) {
                let info = try store.find(id)
                ids[id.rawValue] = info.state == .allocated ? .allocated(set: set.id.rawValue, guest: info.guest) : .freed(set: set.id.rawValue)
                for holder in try store.holders(of: id) { holds.insert("\(id) \(holder)") }
            }
        }
        ack = try store.subscriber("torture").acknowledgedThrough
    }

    /// Applies the journal lines and checks the store; returns the violations.
    mutating func check(after lines: [String], storePath: String) throws -> [String] {
        var inFlight: [Substring] = []
        // Allocations of a concurrent burst (`I allocs SET COUNT`) journaled so far: the burst
        // stays in flight until its `D allocs-end`.
        var burstDone = 0
        for line in lines {
            let f = line.split(separator: " ")
            switch f.first {
            case "I": inFlight = Array(f.dropFirst()); burstDone = 0
            case "D" where inFlight.first == "allocs" && f.count > 1 && f[1] == "alloc": apply(Array(f.dropFirst())); burstDone += 1
            case "D": apply(Array(f.dropFirst())); inFlight = []
            case "S": saw[UInt64(f[1])!] = "\(f[2]) \(f[3])"
            default: break
            }
        }
        var problems: [String] = []
        let store: IOASIDStore
        do { store = try openExisting(storePath) } catch { return ["the store does not open: \(error)"] }
        let report = try store.verify()
        problems += report.violations.map { "verify: [\($0.code)] \($0.message)" }

        // What the operation in flight at the kill may or may not have done.
        let op = inFlight.first.map(String.init) ?? ""
        inFlightAtKill = op
        let opSet = inFlight.count > 1 ? UInt32(inFlight[1]) : nil
        let opID = inFlight.count > 2 ? UInt32(inFlight[2]) : nil
        var spareAllocations = op == "alloc" ? 1 : op == "allocs" ? max(0, Int(opID ?? 0) - burstDone) : 0
        let anyNewSet = op == "create" || op == "import"
        func exempt(_ id: UInt32, in set: UInt32) -> Bool {
            (opID == id && ["free", "attach", "detach", "hold", "release"].contains(op))
                || (opSet == set && ["freeset", "complete", "abort", "freeze"].contains(op))
        }

        var storeIDs: [UInt32: IDInfo] = [:]
        for set in try store.sets() { for id in try store.ids(in: set.id) { storeIDs[id.rawValue] = try store.find(id) } }
        for (id, expected) in ids.sorted(by: { $0.key < $1.key }) {
            let actual = storeIDs[id]
            switch expected {
            case .allocated(let set, let guest):
                if exempt(id, in: set) { continue }
                if actual?.set.rawValue != set || actual?.state != .allocated {
                    problems.append("ID \(id), allocated in set \(set), is \(actual.map { "\($0.state) in set \($0.set)" } ?? "gone")")
                } else if actual?.guest != guest {
                    problems.append("ID \(id) has guest \(actual?.guest.map(String.init) ?? "none"), expected \(guest.map(String.init) ?? "none")")
                }
            case .freed(let set):
                if exempt(id, in: set) { continue }
                if let actual, actual.state == .allocated {
                    // Only the allocation(s) in flight, in their own set, may have reused a freed ID.
                    if (spareAllocations > 0 && actual.set.rawValue == opSet) || (anyNewSet && sets[actual.set.rawValue] == nil) {
                        spareAllocations -= sets[actual.set.rawValue] == nil ? 0 : 1
                    } else {
                        problems.append("ID \(id), freed from set \(set), is allocated in set \(actual.set)")
                    }
                }
            }
        }
        for (id, info) in storeIDs.sorted(by: { $0.key < $1.key }) where ids[id] == nil && info.state == .allocated {
            if anyNewSet && sets[info.set.rawValue] == nil { continue }
            if spareAllocations > 0, info.set.rawValue == opSet {
                spareAllocations -= 1
                continue
            }
            problems.append("ID \(id) is allocated in set \(info.set) but no journaled operation allocated it")
        }
        let storeSets = Dictionary(uniqueKeysWithValues: try store.sets().map { ($0.id.rawValue, $0) })
        for (id, expected) in sets.sorted(by: { $0.key < $1.key }) where opSet != id {
            let actual = storeSets[id]
            if expected.alive {
                if let actual, !actual.isDestroyPending {
                    if actual.quota != expected.quota && op != "quota" { problems.append("set \(id) has quota \(actual.quota), expected \(expected.quota)") }
                    if actual.token != expected.token { problems.append("set \(id) has token \(actual.token), expected \(expected.token)") }
                    if actual.isFrozen != expected.frozen { problems.append("set \(id) frozen: \(actual.isFrozen), expected \(expected.frozen)") }
                } else {
                    problems.append("set \(id) (\(expected.token)) is gone")
                }
            } else if let actual, !actual.isDestroyPending {
                problems.append("set \(id) was destroyed but is live")
            }
        }
        for (id, set) in storeSets where sets[id] == nil && !anyNewSet && !set.isDestroyPending {
            problems.append("set \(id) (\(set.token)) exists but no journaled operation created it")
        }
        for hold in holds.sorted() {
            let parts = hold.split(separator: " ")
            let id = UInt32(parts[0])!
            if opID == id && (op == "release" || op == "hold") { continue }
            if try !store.holders(of: IOASID(id)).contains(String(parts[1])) && storeIDs[id] != nil {
                problems.append("hold \(hold) is gone")
            } else if storeIDs[id] == nil {
                problems.append("held ID \(id) was reclaimed")
            }
        }
        let storeAck = try store.subscriber("torture").acknowledgedThrough
        if storeAck < ack { problems.append("acknowledged through \(ack), but the store says \(storeAck)") }
        if storeAck > ack && op != "ack" { problems.append("the store acknowledged \(storeAck) but only \(ack) was journaled") }
        let pending = try store.pendingEvents(for: "torture")
        let last = try store.status().lastSequence
        if pending.map(\.sequence) != Array((storeAck + 1)...max(storeAck + 1, last)).filter({ $0 <= last }) {
            problems.append("the outbox is not the dense run \(storeAck + 1)…\(last)")
        }
        let bySequence = Dictionary(uniqueKeysWithValues: pending.map { ($0.sequence, "\($0.kind.rawValue) \($0.id?.rawValue ?? 0)") })
        for (sequence, seen) in saw where sequence > storeAck {
            if bySequence[sequence] != seen {
                problems.append("event \(sequence) was delivered as \(seen) but is now \(bySequence[sequence] ?? "missing")")
            }
        }
        return problems
    }

    private mutating func apply(_ f: [Substring]) {
        func u(_ i: Int) -> UInt32 { UInt32(f[i])! }
        switch f[0] {
        case "create": sets[u(1)] = SetState(token: String(f[2]), quota: u(3), alive: true, frozen: false)
        case "alloc": ids[u(2)] = .allocated(set: u(1), guest: f.count > 3 ? u(3) : nil)
        case "free":
            ids[u(2)] = .freed(set: u(1))
        case "hold": holds.insert("\(f[2]) \(f[3])")
        case "release": holds.remove("\(f[2]) \(f[3])")
        case "quota": sets[u(1)]?.quota = u(2)
        case "freeset", "complete":
            let set = u(1)
            for (id, state) in ids {
                if case .allocated(let owner, _) = state, owner == set { ids[id] = .freed(set: set) }
            }
            if f[0] == "complete" || f[2] == "1" { sets[set]?.alive = false }
            if f[0] == "complete" { sets[set]?.frozen = false }
        case "attach": ids[u(2)] = .allocated(set: u(1), guest: u(3))
        case "detach": ids[u(2)] = .allocated(set: u(1), guest: nil)
        case "ack": ack = max(ack, UInt64(f[1])!)
        case "freeze": sets[u(1)]?.frozen = true
        case "abort": sets[u(1)]?.frozen = false
        case "import":
            let set = u(1)
            sets[set] = SetState(token: String(f[2]), quota: u(3), alive: true, frozen: false)
            if f.count > 4 {
                for pair in f[4].split(separator: ",") {
                    let p = pair.split(separator: ":")
                    ids[UInt32(p[0])!] = .allocated(set: set, guest: p[1] == "-" ? nil : UInt32(p[1]))
                }
            }
        default: break
        }
    }
}
