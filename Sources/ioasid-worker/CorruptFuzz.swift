import Foundation
import IOASIDTestSupport

/// The corruption fuzzer: builds a realistic store once through the `ioasid` CLI,
/// records the CLI's answers on it, then damages copies of its `data.mdb` one
/// seeded damage at a time and checks that every read command either answers as
/// before or reports the damage — never dies by a signal, hangs, writes the file
/// or answers wrongly while `verify` says the store is clean.
///
///   ioasid-worker corrupt-fuzz --ioasid BIN [--trials N] [--seed S] [--trial K]
///       [--dir DIR] [--keep-failures DIR] [--template STORE] [--verbose]
///
/// Each trial K draws its damage from `seed` and K alone, so `--seed S --trial K`
/// replays one trial (printing every command's outcome). The store is rebuilt each
/// run and holds a random store ID and timestamps, so a damage that lands on those
/// bytes may differ in detail between runs; `--keep-failures DIR` keeps the exact
/// damaged copies (`DIR/trial-K`) and the undamaged store (`DIR/pristine`, reusable
/// with `--template DIR/pristine` to replay on the very same bytes). `--damage SPEC`
/// applies one given damage instead of drawn ones (`none` checks the harness itself).
struct CorruptFuzz {
    var ioasid = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ioasid").path
    var trials = 200
    var seed = UInt64(UInt32.random(in: 0 ... .max))
    var only: Int?
    var dir = NSTemporaryDirectory() + "ioasid-corrupt-fuzz-\(getpid())"
    var keepFailures: String?
    var template: String?
    var fixedDamage: Damage?
    var verbose = false
    var timeout = 10.0

    static let usage = "usage: ioasid-worker corrupt-fuzz [--ioasid BIN] [--trials N] [--seed S] [--trial K] [--dir DIR] [--keep-failures DIR] [--template STORE] [--damage SPEC] [--timeout SECONDS] [--verbose]"

    init(arguments: [String]) {
        var rest = arguments[...]
        func value<T>(_ parse: (String) -> T?) -> T {
            guard let text = rest.popFirst(), let parsed = parse(text) else { fail(Self.usage, code: 64) }
            return parsed
        }
        while let arg = rest.popFirst() {
            switch arg {
            case "--ioasid": ioasid = value { $0 }
            case "--trials": trials = value { Int($0).flatMap { $0 >= 0 ? $0 : nil } }
            case "--seed": seed = value { UInt64($0) }
            case "--trial": only = value { Int($0).flatMap { $0 >= 0 ? $0 : nil } }
            case "--dir": dir = value { $0 }
            case "--keep-failures": keepFailures = value { $0 }
            case "--template": template = value { $0 }
            case "--damage": fixedDamage = value(Damage.init(spec:))
            case "--timeout": timeout = value { Double($0).flatMap { $0 > 0 ? $0 : nil } }
            case "--verbose": verbose = true
            default: fail(Self.usage, code: 64)
            }
        }
    }

    func run() throws -> Int32 {
        guard FileManager.default.isExecutableFile(atPath: ioasid) else { fail("corrupt-fuzz: no ioasid binary at \(ioasid) (use --ioasid)", code: 64) }
        let started = Date()
        let fm = FileManager.default
        try? fm.removeItem(atPath: dir)
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let cli = CLI(binary: ioasid, timeout: timeout)

        let pristine: String
        if let template {
            pristine = template
        } else {
            pristine = dir + "/pristine"
            let built = Date()
            try StoreBuilder(cli: cli, path: pristine).build()
            note(String(format: "corrupt-fuzz: built the store in %.1f s", Date().timeIntervalSince(built)))
        }
        if let keep = keepFailures, template == nil {
            try fm.createDirectory(atPath: keep, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: keep + "/pristine")
            try Self.copyStore(from: pristine, to: keep + "/pristine")
        }
        let original = try Data(contentsOf: URL(fileURLWithPath: pristine + "/data.mdb"))
        let pageSize = Damage.pageSize(of: original)
        let baseline = try Baseline(cli: cli, store: pristine)
        note("corrupt-fuzz: data.mdb \(original.count) bytes (\(original.count / pageSize) pages of \(pageSize)); \(baseline.probes.count) read commands per trial")

        var tally = Tally()
        let range = only.map { $0...$0 } ?? (trials > 0 ? 0...(trials - 1) : 1...0)
        for trial in range {
            let damage = fixedDamage ?? Damage.draw(trial: trial, seed: seed, fileSize: original.count, pageSize: pageSize)
            let copy = dir + "/trial"
            try? fm.removeItem(atPath: copy)
            try Self.copyStore(from: pristine, to: copy)
            try damage.apply(to: copy + "/data.mdb")
            // A damage that changed no byte (zeros over zeros, two identical pages) has the baseline's answers.
            let outcome: Outcome
            if fixedDamage == nil, (try? Data(contentsOf: URL(fileURLWithPath: copy + "/data.mdb"))) == original {
                outcome = Outcome()
                tally.noop += 1
            } else {
                outcome = try Trial(cli: cli, store: copy, baseline: baseline, verbose: verbose || only != nil).run()
            }
            tally.add(trial: trial, damage: damage, outcome: outcome)
            if let keep = keepFailures, !outcome.failures.isEmpty {
                try? fm.createDirectory(atPath: keep, withIntermediateDirectories: true)
                let kept = keep + "/trial-\(trial)"
                try? fm.removeItem(atPath: kept)
                try Self.copyStore(from: pristine, to: kept)
                try damage.apply(to: kept + "/data.mdb")
            }
            if only != nil { print("trial \(trial): \(damage) → \(outcome.summary)") }
            let done = trial - range.lowerBound + 1
            if done % 100 == 0 {
                note("corrupt-fuzz: \(done)/\(range.count) trials, \(tally.failed) failed, \(tally.reported) reported, \(tally.identical) identical")
            }
        }
        try? fm.removeItem(atPath: dir + "/trial")

        let failureLines = tally.failureLines(seed: seed)
        for line in failureLines.prefix(200) { print(line) }
        if failureLines.count > 200 { print("… \(failureLines.count - 200) more failures") }
        // The 20 commonest reports, then every report that names no file, database or page.
        let messageLines = tally.messageLines()
        for line in messageLines.prefix(20) { print(line) }
        for line in messageLines.dropFirst(20) where line.contains("(vague)") { print(line) }
        if !tally.vagueTrials.isEmpty {
            print("vague trials (replay: --seed \(seed) --trial K): " + tally.vagueTrials.prefix(50).map(String.init).joined(separator: " "))
        }
        print("by damage: " + tally.kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.trials) (failed \($0.value.failed), reported \($0.value.reported))" }.joined(separator: ", "))
        let elapsed = Date().timeIntervalSince(started)
        print(String(
            format: "corrupt-fuzz: trials=%d pass=%d reported=%d identical=%d crashes=%d hangs=%d silent-wrong=%d read-wrote=%d repair-unclean=%d vague=%d no-op=%d seed=%llu in %.0f s",
            range.count, tally.passed, tally.reported, tally.identical, tally.count(.crash), tally.count(.hang),
            tally.count(.silentWrong), tally.count(.readWrote), tally.count(.repairUnclean), tally.vague, tally.noop, seed, elapsed
        ))
        if tally.failed == 0 && template == nil { try? fm.removeItem(atPath: dir) }
        return tally.failed == 0 ? 0 : 2
    }

    /// Copies the store's two files into a fresh directory.
    static func copyStore(from source: String, to destination: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: destination, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for name in ["data.mdb", "lock.mdb"] where fm.fileExists(atPath: source + "/" + name) {
            try fm.copyItem(atPath: source + "/" + name, toPath: destination + "/" + name)
        }
    }
}

func note(_ line: String) {
    try? FileHandle.standardError.write(contentsOf: Data((line + "\n").utf8))
}

// MARK: Running the CLI

/// How one CLI invocation ended.
struct CommandResult {
    var status: Int32 = 0
    var signal: Int32?
    var hung = false
    var stdout = ""
    var stderr = ""

    var how: String {
        if hung { return "hung (killed after the timeout)" }
        if let signal { return "killed by signal \(signal) (\(signalName(signal)))" }
        return "exit \(status)"
    }
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGILL: "SIGILL"
    case SIGTRAP: "SIGTRAP"
    case SIGABRT: "SIGABRT"
    case SIGBUS: "SIGBUS"
    case SIGFPE: "SIGFPE"
    case SIGKILL: "SIGKILL"
    case SIGSEGV: "SIGSEGV"
    case SIGPIPE: "SIGPIPE"
    default: "signal \(signal)"
    }
}

/// Runs the `ioasid` binary with a timeout; output goes to files, so a command
/// that prints a lot cannot block on a full pipe.
struct CLI {
    let binary: String
    let timeout: Double

    func run(_ arguments: [String], scratch: String) throws -> CommandResult {
        let out = scratch + ".out", err = scratch + ".err"
        for path in [out, err] {
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw ToolError("cannot create \(path)") }
        }
        guard let outHandle = FileHandle(forWritingAtPath: out), let errHandle = FileHandle(forWritingAtPath: err) else {
            throw ToolError("cannot open \(out)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        // A crash is what is being looked for: skip the Swift runtime's backtrace (it costs time).
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = environment
        process.standardOutput = outHandle
        process.standardError = errHandle
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        var result = CommandResult()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            done.wait()
            result.hung = true
        }
        try? outHandle.close()
        try? errHandle.close()
        if !result.hung {
            if process.terminationReason == .uncaughtSignal {
                result.signal = process.terminationStatus
            } else {
                result.status = process.terminationStatus
            }
        }
        result.stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        result.stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: out)
        try? FileManager.default.removeItem(atPath: err)
        return result
    }
}

struct ToolError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Damage

/// One seeded damage to `data.mdb`.
enum Damage: CustomStringConvertible {
    case unchanged
    case bitFlip(offset: Int, bit: Int)
    case zeroRun(offset: Int, length: Int)
    case randomRun(offset: Int, bytes: [UInt8])
    case truncate(length: Int)
    case swapPages(Int, Int, pageSize: Int)

    /// The page size from LMDB's first meta page (the free database's `md_pad`), else 4096.
    static func pageSize(of file: Data) -> Int {
        guard file.count >= 44 else { return 4096 }
        let bytes = [UInt8](file.prefix(44))
        let magic = UInt32(bytes[16]) | UInt32(bytes[17]) << 8 | UInt32(bytes[18]) << 16 | UInt32(bytes[19]) << 24
        let size = Int(bytes[40]) | Int(bytes[41]) << 8 | Int(bytes[42]) << 16 | Int(bytes[43]) << 24
        guard magic == 0xBEEF_C0DE, size >= 512, size <= 65536, size & (size - 1) == 0 else { return 4096 }
        return size
    }

    /// The damage of trial `trial`: a function of the seed and the trial number only.
    static func draw(trial: Int, seed: UInt64, fileSize: Int, pageSize: Int) -> Damage {
        var rng = SplitMix(seed: seed ^ ((UInt64(trial) &+ 1) &* 0xD1B5_4A32_D192_ED03))
        _ = rng.next()
        let size = max(fileSize, 1)
        let pages = max(fileSize / pageSize, 1)
        // One byte damage in eight lands on the two meta pages, the rest anywhere.
        func offset() -> Int {
            rng.next() % 8 == 0 ? Int(rng.next() % UInt64(min(size, 2 * pageSize))) : Int(rng.next() % UInt64(size))
        }
        switch rng.next() % 6 {
        case 0, 1:
            return .bitFlip(offset: offset(), bit: Int(rng.next() % 8))
        case 2:
            let at = offset()
            return .zeroRun(offset: at, length: min(Int(rng.next() % 64) + 1, size - at))
        case 3:
            let at = offset()
            let length = min(Int(rng.next() % 64) + 1, size - at)
            return .randomRun(offset: at, bytes: (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        case 4:
            switch rng.next() % 4 {
            case 0: return .truncate(length: 0)
            case 1, 2: return .truncate(length: Int(rng.next() % UInt64(pages)) * pageSize)
            default: return .truncate(length: Int(rng.next() % UInt64(size)))
            }
        default:
            let a = Int(rng.next() % UInt64(pages))
            var b = Int(rng.next() % UInt64(max(pages - 1, 1)))
            if b >= a { b += 1 }
            return .swapPages(a, min(b, pages - 1), pageSize: pageSize)
        }
    }

    /// Parses `none`, `bit-flip:OFFSET:BIT`, `zero-run:OFFSET:LENGTH`, `truncate:LENGTH`
    /// or `page-swap:A:B[:PAGESIZE]` (the `--damage` option).
    init?(spec: String) {
        let parts = spec.split(separator: ":").map(String.init)
        let n = parts.dropFirst().compactMap { Int($0) }
        guard n.count == parts.count - 1, n.allSatisfy({ $0 >= 0 }) else { return nil }
        switch (parts.first, n.count) {
        case ("none", 0): self = .unchanged
        case ("bit-flip", 2) where n[1] < 8: self = .bitFlip(offset: n[0], bit: n[1])
        case ("zero-run", 2): self = .zeroRun(offset: n[0], length: n[1])
        case ("truncate", 1): self = .truncate(length: n[0])
        case ("page-swap", 2): self = .swapPages(n[0], n[1], pageSize: 4096)
        case ("page-swap", 3) where n[2] > 0: self = .swapPages(n[0], n[1], pageSize: n[2])
        default: return nil
        }
    }

    var kind: String {
        switch self {
        case .unchanged: "none"
        case .bitFlip: "bit-flip"
        case .zeroRun: "zero-run"
        case .randomRun: "random-run"
        case .truncate: "truncate"
        case .swapPages: "page-swap"
        }
    }

    var description: String {
        switch self {
        case .unchanged: "none"
        case .bitFlip(let offset, let bit): "bit-flip offset=\(offset) length=1 (bit \(bit))"
        case .zeroRun(let offset, let length): "zero-run offset=\(offset) length=\(length)"
        case .randomRun(let offset, let bytes): "random-run offset=\(offset) length=\(bytes.count)"
        case .truncate(let length): "truncate length=\(length)"
        case .swapPages(let a, let b, let pageSize): "page-swap pages \(a)↔\(b) (offsets \(a * pageSize), \(b * pageSize), length=\(pageSize))"
        }
    }

    func apply(to path: String) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        switch self {
        case .unchanged:
            break
        case .bitFlip(let offset, let bit):
            if offset < bytes.count { bytes[offset] ^= UInt8(1) << UInt8(bit) }
        case .zeroRun(let offset, let length):
            for i in offset..<min(offset + length, bytes.count) { bytes[i] = 0 }
        case .randomRun(let offset, let run):
            for (i, byte) in run.enumerated() where offset + i < bytes.count { bytes[offset + i] = byte }
        case .truncate(let length):
            bytes.removeLast(max(0, bytes.count - length))
        case .swapPages(let a, let b, let pageSize):
            guard (a + 1) * pageSize <= bytes.count, (b + 1) * pageSize <= bytes.count, a != b else { break }
            let pageA = Array(bytes[a * pageSize..<(a + 1) * pageSize])
            bytes.replaceSubrange(a * pageSize..<(a + 1) * pageSize, with: bytes[b * pageSize..<(b + 1) * pageSize])
            bytes.replaceSubrange(b * pageSize..<(b + 1) * pageSize, with: pageA)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

// MARK: The store and its baseline

/// Builds a small but realistic store through the CLI: several sets (one destroyed,
/// one migrated away), private data, guest IDs, holds, filtered and unfiltered
/// subscribers, free-pending IDs, reclaimed IDs, pending events and an import record.
struct StoreBuilder {
    let cli: CLI
    let path: String

    @discardableResult
    func run(_ arguments: [String], expect: Int32 = 0) throws -> String {
        let result = try cli.run(["--store", path] + arguments, scratch: path + "-cmd")
        guard !result.hung, result.signal == nil, result.status == expect else {
            throw ToolError("building the store: `ioasid \(arguments.joined(separator: " "))` \(result.how): \(result.stderr)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func build() throws {
        var rng = SplitMix(seed: 0x1045_1D)
        func hex(_ count: Int) -> String { (0..<count).map { _ in String(format: "%02x", UInt8(truncatingIfNeeded: rng.next())) }.joined() }
        try run(["init", "--capacity", "4096", "--system-quota", "512"])
        try run(["events", "subscribe", "audit"])
        var sets: [UInt32] = []
        for (token, quota) in [("vm:alpha", 200), ("vm:beta", 150), ("vm:gamma", 100), ("vm:delta", 80), ("vm:epsilon", 60)] {
            sets.append(UInt32(try run(["set", "create", "--token", token, "--quota", String(quota)])) ?? 0)
        }
        try run(["events", "subscribe", "kvm", "--set", String(sets[0]), "--set", String(sets[1]), "--kind", "FREE", "--kind", "RECLAIM"])
        try run(["events", "subscribe", "vfio", "--kind", "BIND", "--kind", "UNBIND", "--kind", "SET_FREE"])
        // Allocations: the system set and every VM set; some with data, some with a guest ID.
        var owned: [(id: String, set: String)] = []
        let plan: [(set: UInt32, count: Int)] = [(1, 40), (sets[0], 90), (sets[1], 70), (sets[2], 50), (sets[3], 30), (sets[4], 25)]
        for (set, count) in plan {
            for i in 0..<count {
                var arguments = ["alloc", "--set", String(set)]
                if i % 3 == 0 { arguments += ["--data", hex(Int(rng.next() % 24) + 1)] }
                if set != 1 && i % 4 == 1 { arguments += ["--guest", String(100 + i)] }
                if i % 17 == 5 { arguments += ["--min", String(1000 + i * 7)] }
                owned.append((try run(arguments), String(set)))
            }
        }
        // Holds, then frees: of held IDs (free-pending until released) and of others.
        for (id, set) in owned.enumerated().filter({ $0.offset % 13 == 2 }).map(\.element) {
            try run(["hold", id, "--set", set, "--holder", "vfio:0000:3b:00.0"])
        }
        try run(["attach", owned[46].id, "--set", owned[46].set, "--guest", "9000"])
        try run(["detach", owned[49].id, "--set", owned[49].set])
        for (id, set) in owned.enumerated().filter({ $0.offset % 9 == 4 }).map(\.element) {
            try run(["free", id, "--set", set])
        }
        // Acknowledge everything so far: unheld freed IDs are reclaimed.
        let status = try run(["--json", "status"])
        let last = (try? JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])?["lastSequence"] as? Int ?? 0
        for name in ["audit", "kvm", "vfio"] { try run(["events", "ack", name, "--through", String(last)]) }
        // Release some holds; free more that nobody acknowledges (free-pending, events pending).
        for (id, set) in owned.enumerated().filter({ $0.offset % 13 == 2 && $0.offset % 2 == 0 }).map(\.element) {
            try run(["release", id, "--set", set, "--holder", "vfio:0000:3b:00.0"])
        }
        for (id, set) in owned.enumerated().filter({ $0.offset % 11 == 7 && $0.offset % 9 != 4 }).map(\.element) {
            try run(["free", id, "--set", set])
        }
        try run(["set", "adjust", String(sets[2]), "--quota", "120"])
        // Migrate a set into the same store (an import record, remapped host IDs), then complete.
        let export = path + "-export.jsonl"
        try run(["migrate", "export", "--set", String(sets[3]), "--out", export])
        try run(["migrate", "import", export, "--token", "vm:delta-moved"])
        try run(["migrate", "complete", String(sets[3])])
        try? FileManager.default.removeItem(atPath: export)
        // Destroy one set outright, and create a last small one after it.
        try run(["set", "free", String(sets[4]), "--destroy"])
        let last2 = try run(["set", "create", "--token", "vm:zeta", "--quota", "20"])
        for _ in 0..<10 { try run(["alloc", "--set", last2, "--data", hex(8)]) }
        try run(["events", "subscribe", "late", "--set", last2])
        try run(["free", try run(["alloc", "--set", last2]), "--set", last2])
    }
}

/// One read command of a trial and its baseline answer.
struct Probe {
    let arguments: [String]
    var label: String { arguments.joined(separator: " ") }
}

/// An answer reduced to what must not change: exit status and stdout with
/// time-dependent fields (ages) removed.
struct Answer: Equatable {
    let status: Int32
    let output: String

    init(_ result: CommandResult) {
        status = result.status
        output = Answer.normalize(result.stdout)
    }

    static func normalize(_ text: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else { return text }
        func strip(_ value: Any) -> Any {
            if let dictionary = value as? [String: Any] {
                // The store's directory differs between the template and its copies.
                return dictionary.filter { $0.key != "path" }.mapValues(strip)
            }
            if let array = value as? [Any] { return array.map(strip) }
            return value
        }
        guard let data = try? JSONSerialization.data(withJSONObject: strip(object), options: [.sortedKeys, .fragmentsAllowed]) else { return text }
        return String(decoding: data, as: UTF8.self)
    }
}

/// The read commands of every trial and their answers on the undamaged store.
struct Baseline {
    var probes: [Probe] = []
    var answers: [Answer] = []
    let verify: Answer

    init(cli: CLI, store: String) throws {
        func json(_ arguments: [String]) throws -> Any {
            let result = try cli.run(["--store", store, "--json"] + arguments, scratch: store + "-cmd")
            guard result.status == 0, !result.hung, result.signal == nil,
                let value = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8), options: [.fragmentsAllowed])
            else { throw ToolError("baseline: `ioasid \(arguments.joined(separator: " "))` \(result.how): \(result.stderr)") }
            return value
        }
        let status = try json(["status"]) as? [String: Any] ?? [:]
        let capacity = status["capacity"] as? Int ?? 4096
        let sets = (status["sets"] as? [[String: Any]] ?? []).compactMap { $0["set"] as? Int }
        let subscribers = (status["subscribers"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        var idsBySet: [Int: [Int]] = [:]
        for set in sets { idsBySet[set] = (try json(["set", "ids", String(set)]) as? [String: Any])?["ids"] as? [Int] ?? [] }

        // A sample of IDs: every set's first, and up to two each of free-pending,
        // with a guest, with data; then IDs no set holds.
        var sample: [Int] = []
        var freePending = 0, guests = 0, withData = 0
        var guestLookup: (set: Int, guest: Int)?
        for set in sets {
            let ids = idsBySet[set] ?? []
            if let id = ids.first, !sample.contains(id) { sample.append(id) }
            for id in ids {
                let record = try json(["find", String(id)]) as? [String: Any] ?? [:]
                var take = false
                if record["state"] as? String == "freePending" && freePending < 2 { freePending += 1; take = true }
                if let guest = record["guest"] as? Int, guests < 2 {
                    guests += 1; take = true
                    guestLookup = guestLookup ?? (set, guest)
                }
                if (record["data"] as? String ?? "").count > 0 && withData < 2 { withData += 1; take = true }
                if take && !sample.contains(id) { sample.append(id) }
                if freePending >= 2 && guests >= 2 && withData >= 2 { break }
            }
        }
        let held = Set(idsBySet.values.joined())
        if let gap = (1..<capacity).first(where: { !held.contains($0) }) { sample.append(gap) }
        sample.append(capacity - 1)

        probes.append(Probe(arguments: ["status"]))
        probes += sample.map { Probe(arguments: ["find", String($0)]) }
        if let guestLookup { probes.append(Probe(arguments: ["find", "--set", String(guestLookup.set), "--guest", String(guestLookup.guest)])) }
        probes += sets.map { Probe(arguments: ["set", "ids", String($0)]) }
        probes += subscribers.map { Probe(arguments: ["events", "pending", $0]) }

        // Twice, to be sure the answers do not change by themselves.
        var first: [Answer] = []
        for round in 0..<2 {
            var answers: [Answer] = []
            for probe in probes {
                answers.append(Answer(try cli.run(["--store", store, "--json"] + probe.arguments, scratch: store + "-cmd")))
            }
            if round == 0 { first = answers } else if answers != first { throw ToolError("baseline answers change between two runs on the undamaged store") }
        }
        answers = first
        let verified = try cli.run(["--store", store, "--json", "verify"], scratch: store + "-cmd")
        guard verified.status == 0, !verified.hung, verified.signal == nil else {
            throw ToolError("baseline: verify on the undamaged store \(verified.how): \(verified.stdout) \(verified.stderr)")
        }
        verify = Answer(verified)
    }
}

// MARK: One trial

enum FailureClass: String, CaseIterable {
    case crash, hang, silentWrong = "silent-wrong", readWrote = "read-wrote", repairUnclean = "repair-unclean"
}

struct Failure {
    let kind: FailureClass
    let command: String
    let detail: String
}

struct Outcome {
    var failures: [Failure] = []
    var reported = false
    var identical = true
    /// Messages that reported the damage, and whether each names the file, a database or a page.
    var reports: [(message: String, specific: Bool)] = []

    var summary: String {
        if !failures.isEmpty { return "FAIL (" + Set(failures.map(\.kind.rawValue)).sorted().joined(separator: ",") + ")" }
        if reported { return reports.allSatisfy(\.specific) ? "pass (reported)" : "pass (reported, vague)" }
        return "pass (identical)"
    }
}

/// Runs every read command, `verify`, `verify --repair` and `verify` on one damaged copy.
struct Trial {
    let cli: CLI
    let store: String
    let baseline: Baseline
    let verbose: Bool

    func contents() -> Data? { try? Data(contentsOf: URL(fileURLWithPath: store + "/data.mdb")) }

    func run() throws -> Outcome {
        var outcome = Outcome()
        var wrong: [(label: String, result: CommandResult, expected: Answer)] = []

        func execute(_ arguments: [String], readOnly: Bool) throws -> CommandResult {
            let label = arguments.joined(separator: " ")
            let before = readOnly ? contents() : nil
            let result = try cli.run(["--store", store, "--json"] + arguments, scratch: store + "-cmd")
            if verbose {
                print("  ioasid \(label): \(result.how)")
                if !result.stdout.isEmpty { print("    stdout: \(result.stdout.prefix(300).replacingOccurrences(of: "\n", with: " "))") }
                if !result.stderr.isEmpty { print("    stderr: \(result.stderr.prefix(300).replacingOccurrences(of: "\n", with: " "))") }
            }
            if result.hung {
                outcome.failures.append(Failure(kind: .hang, command: label, detail: result.how))
            } else if result.signal != nil {
                let firstLine = result.stderr.split(separator: "\n").first.map { ": " + $0.prefix(160) } ?? ""
                outcome.failures.append(Failure(kind: .crash, command: label, detail: result.how + firstLine))
            } else if result.status == 3 {
                outcome.reported = true
                // An error document on stderr; `verify` of a structurally damaged store
                // prints its report (pages and databases) on stdout instead.
                var message = Self.errorMessage(result.stderr)
                if message.isEmpty { message = Self.violations(result.stdout) }
                outcome.reports.append((message, Self.namesDamage(message)))
            }
            if readOnly {
                let after = contents()
                if before != after {
                    let sizes = "\(before.map { String($0.count) } ?? "missing") → \(after.map { String($0.count) } ?? "missing") bytes"
                    outcome.failures.append(Failure(kind: .readWrote, command: label, detail: "\(result.how); data.mdb changed (\(sizes))"))
                }
            }
            return result
        }

        for (probe, expected) in zip(baseline.probes, baseline.answers) {
            let result = try execute(probe.arguments, readOnly: true)
            guard !result.hung, result.signal == nil, result.status != 3 else { continue }
            if Answer(result) != expected {
                outcome.identical = false
                wrong.append((probe.label, result, expected))
            }
        }
        let verify = try execute(["verify"], readOnly: true)
        if !verify.hung, verify.signal == nil {
            if verify.status == 1 {
                outcome.reported = true
                let message = Self.violations(verify.stdout)
                outcome.reports.append((message, Self.namesDamage(message)))
            } else if verify.status == 0 && Answer(verify) != baseline.verify {
                outcome.identical = false
                wrong.append(("verify", verify, baseline.verify))
            }
            if verify.status == 0 {
                for (label, result, expected) in wrong {
                    outcome.failures.append(Failure(
                        kind: .silentWrong, command: label,
                        detail: "exit \(result.status) (baseline exit \(expected.status)) while verify exits 0: " + Self.difference(Answer(result).output, expected.output)
                    ))
                }
            }
        }
        let repair = try execute(["verify", "--repair"], readOnly: false)
        if !repair.hung, repair.signal == nil, repair.status == 0 {
            let after = try execute(["verify"], readOnly: false)
            if !after.hung, after.signal == nil, after.status != 0 {
                outcome.failures.append(Failure(kind: .repairUnclean, command: "verify --repair; verify", detail: "repair exits 0 but the next verify \(after.how): \(Self.errorMessage(after.stderr + after.stdout).prefix(200))"))
            }
        }
        if outcome.reported { outcome.identical = false }
        return outcome
    }

    /// Where two answers first differ: a short excerpt of each around that point.
    static func difference(_ actual: String, _ expected: String) -> String {
        let a = Array(actual), e = Array(expected)
        let at = (0..<min(a.count, e.count)).first { a[$0] != e[$0] } ?? min(a.count, e.count)
        func excerpt(_ chars: [Character]) -> String {
            let start = max(0, at - 50), end = min(chars.count, at + 50)
            return (start > 0 ? "…" : "") + String(chars[start..<end]) + (end < chars.count ? "…" : "")
        }
        return "answered \(excerpt(a)) — baseline \(excerpt(e)) (first difference at character \(at))"
    }

    /// The message of a `--json` error on stderr, else stderr itself.
    static func errorMessage(_ stderr: String) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(stderr.utf8)) as? [String: Any],
            let error = object["error"] as? [String: Any]
        {
            return [error["message"] as? String, error["cause"] as? String].compactMap { $0 }.joined(separator: " — ")
        }
        return stderr.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The violations `verify --json` listed, as one line.
    static func violations(_ stdout: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any],
            let list = object["violations"] as? [[String: Any]]
        else { return stdout }
        return list.prefix(3).map { v in
            "[\(v["code"] as? String ?? "?")] \(v["message"] as? String ?? "") (\((v["records"] as? [String] ?? []).joined(separator: ", ")))"
        }.joined(separator: "; ")
    }

    static let databases = ["meta", "control", "tokens", "ids", "events", "subscribers", "holds", "pending", "guests", "imports", "migrations"]

    /// Whether a message names the damaged file, a database (quoted, or next to the
    /// word "database") or a page.
    static func namesDamage(_ message: String) -> Bool {
        let lower = message.lowercased()
        if lower.contains("data.mdb") || lower.contains("page") { return true }
        let names = databases.joined(separator: "|")
        let pattern = "(database|db)\\s+['\"`]?(\(names))\\b|\\b(\(names))['\"`]?\\s+(database|db)\\b|['\"`](\(names))['\"`]"
        return lower.range(of: pattern, options: .regularExpression) != nil
    }
}

// MARK: Tally

struct Tally {
    var passed = 0, reported = 0, identical = 0, vague = 0, failed = 0
    /// Trials with a report that names no file, database or page.
    var vagueTrials: [Int] = []
    /// Trials whose damage changed no byte (counted as identical, no command run).
    var noop = 0
    var classes: [FailureClass: Int] = [:]
    var failures: [(trial: Int, damage: Damage, failure: Failure, commands: Int)] = []
    var messages: [String: (count: Int, specific: Bool)] = [:]
    var kinds: [String: (trials: Int, failed: Int, reported: Int)] = [:]

    func count(_ kind: FailureClass) -> Int { classes[kind] ?? 0 }

    mutating func add(trial: Int, damage: Damage, outcome: Outcome) {
        kinds[damage.kind, default: (0, 0, 0)].trials += 1
        if !outcome.failures.isEmpty { kinds[damage.kind, default: (0, 0, 0)].failed += 1 }
        if outcome.failures.isEmpty && outcome.reported { kinds[damage.kind, default: (0, 0, 0)].reported += 1 }
        for message in outcome.reports {
            // Numbers and paths vary by trial; count messages by their shape.
            let shape = message.message
                .replacingOccurrences(of: "/[^ :'\"]+", with: "PATH", options: .regularExpression)
                .replacingOccurrences(of: "[0-9]+", with: "N", options: .regularExpression)
            messages[shape, default: (0, message.specific)].count += 1
        }
        if outcome.failures.isEmpty {
            passed += 1
            if outcome.reported {
                reported += 1
                if !outcome.reports.allSatisfy(\.specific) {
                    vague += 1
                    vagueTrials.append(trial)
                }
            } else {
                identical += 1
            }
            return
        }
        failed += 1
        for kind in Set(outcome.failures.map(\.kind)) { classes[kind, default: 0] += 1 }
        // One line per class: its first command, and how many commands it hit.
        for kind in FailureClass.allCases {
            let hits = outcome.failures.filter { $0.kind == kind }
            if let first = hits.first { failures.append((trial, damage, first, hits.count)) }
        }
    }

    func failureLines(seed: UInt64) -> [String] {
        failures.map {
            let more = $0.commands > 1 ? " (and \($0.commands - 1) more commands)" : ""
            return "FAIL trial \($0.trial) [\($0.failure.kind.rawValue)] \($0.damage): ioasid \($0.failure.command): \($0.failure.detail)\(more) — replay: --seed \(seed) --trial \($0.trial)"
        }
    }

    func messageLines() -> [String] {
        messages.sorted { $0.value.count > $1.value.count }.map {
            "reported \($0.value.count)×\($0.value.specific ? "" : " (vague)"): \($0.key.prefix(200))"
        }
    }
}
