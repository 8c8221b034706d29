// ioasid-fuzz: a mutation fuzzer for the export parser and the CLI's argument handling.
//
//   ioasid-fuzz import [--runs N] [--seed S] [--corpus DIR] [--save DIR]
//       Mutates valid exports (bit flips, byte edits, insertions, deletions, line
//       swaps and duplicates, truncation, splices; sometimes re-sealing the
//       checksum so deeper checks run) and feeds each to the validator; inputs it
//       accepts are imported into a scratch store, and rejected ones are imported
//       now and then too, to check that every refusal is typed and changes nothing.
//       With --save, inputs that reach a new outcome are written to DIR.
//   ioasid-fuzz cli [--runs N] [--seed S]
//       Parses random argument vectors (real subcommands and options with hostile
//       values) with the ioasid command's parser; every outcome must be a clean
//       parse, help, or a usage error (exit 64), and a vector that forms a quick
//       lookup must be parsed as the same lookup (`QuickLookup.disagreement`).
//
// Prints one summary line; exit 0 when no run crashed or broke a rule, 2 otherwise.

import ArgumentParser
import Crypto
import Foundation
import IOASIDCommandLine
import IOASIDStore
import IOASIDTestSupport

struct Options {
    var mode = ""
    var runs = 20_000
    var seed: UInt64 = 1
    var corpus: String?
    var save: String?
}

var options = Options()
var rest = CommandLine.arguments.dropFirst()
options.mode = rest.popFirst() ?? ""
while let arg = rest.popFirst() {
    switch arg {
    case "--runs": options.runs = Int(rest.popFirst() ?? "") ?? options.runs
    case "--seed": options.seed = UInt64(rest.popFirst() ?? "") ?? options.seed
    case "--corpus": options.corpus = rest.popFirst()
    case "--save": options.save = rest.popFirst()
    default:
        try? FileHandle.standardError.write(contentsOf: Data("usage: ioasid-fuzz import|cli [--runs N] [--seed S] [--corpus DIR] [--save DIR]\n".utf8))
        exit(64)
    }
}

var rng = SplitMix(seed: options.seed)
let started = Date()

switch options.mode {
case "import": exit(try fuzzImport())
case "cli": exit(fuzzCLI())
default:
    try? FileHandle.standardError.write(contentsOf: Data("usage: ioasid-fuzz import|cli …\n".utf8))
    exit(64)
}

// MARK: Export parser

@MainActor func fuzzImport() throws -> Int32 {
    let scratch = NSTemporaryDirectory() + "ioasid-fuzz-\(getpid())"
    try? FileManager.default.removeItem(atPath: scratch)
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }

    // Seeds: real exports of a few shapes, plus any corpus files.
    var o = IOASIDStore.Options()
    o.capacity = 4096
    o.systemQuota = 16
    let source = try IOASIDStore(path: scratch + "/source", options: o)
    var seeds: [[UInt8]] = []
    for (index, shape) in [(0, false), (1, false), (12, true), (40, true)].enumerated() {
        let set = try source.createSet(token: "vm:seed-\(index)", quota: 64)
        for i in 0..<shape.0 {
            _ = try source.allocate(in: set, data: shape.1 && i % 2 == 0 ? [UInt8(i), 0xee] : [], guest: shape.1 ? UInt32(100 + i) : nil)
        }
        var data = Data()
        _ = try source.exportSet(set, to: { data.append(contentsOf: $0) })
        seeds.append(Array(data))
    }
    if let corpus = options.corpus, let files = try? FileManager.default.contentsOfDirectory(atPath: corpus) {
        for file in files.sorted() {
            if let data = FileManager.default.contents(atPath: corpus + "/" + file) { seeds.append(Array(data)) }
        }
    }
    var destination = try IOASIDStore(path: scratch + "/destination-0", options: o)
    var generation = 0
    var accepted = 0, imported = 0, rejected = 0, deepChecks = 0, failures = 0
    var outcomes = Set<String>()

    /// Imports `input` into the scratch destination: the refusal code (nil on success) and
    /// whether a refusal changed the store.
    func importForReal(_ input: [UInt8]) throws -> (IOASIDError.Code?, Bool) {
        let file = scratch + "/input.jsonl"
        try Data(input).write(to: URL(fileURLWithPath: file))
        let before = try destination.rawDump()
        do {
            _ = try destination.importSet(from: file)
            return (nil, false)
        } catch {
            return (error.code, try destination.rawDump() != before)
        }
    }

    for run in 0..<options.runs {
        var input = seeds[Int(rng.next() % UInt64(seeds.count))]
        for _ in 0...(rng.next() % 4) { mutate(&input, seeds: seeds) }
        if rng.next() % 3 == 0 { reseal(&input) }
        var outcome = ""
        switch Result(catching: { () throws(IOASIDError) in try ExportFormat.validate(input) }) {
        case .success:
            accepted += 1
            // Accepted by the validator: the import itself must succeed or refuse cleanly.
            switch try importForReal(input) {
            case (nil, _):
                imported += 1
                outcome = "imported"
                if !(try destination.verify().isClean) {
                    failures += 1
                    print("run \(run): an accepted import broke an invariant")
                }
            case (let code?, let changed):
                outcome = "import:\(code.name)"
                if changed {
                    failures += 1
                    print("run \(run): a refused import (\(code.name)) changed the store")
                }
            }
        case .failure(let error):
            rejected += 1
            // Outcome = code and message shape (numbers dropped), to tell new paths from old ones.
            outcome = "\(error.code.name):" + String(error.message.filter { !$0.isNumber }.prefix(40))
            if error.category != .refused {
                failures += 1
                print("run \(run): rejected with a non-refusal \(error)")
            }
            if run % 997 == 0 {
                // Now and then, import the rejected input for real: same refusal, nothing changed.
                deepChecks += 1
                let (code, changed) = try importForReal(input)
                if code != error.code || changed {
                    failures += 1
                    print("run \(run): importSet answered \(code.map(\.name) ?? "success"), changed: \(changed)")
                }
            }
        }
        if outcomes.insert(outcome).inserted, let save = options.save {
            try? FileManager.default.createDirectory(atPath: save, withIntermediateDirectories: true)
            let name = outcome.map { $0.isLetter || $0.isNumber ? $0 : "-" }
            try Data(input).write(to: URL(fileURLWithPath: "\(save)/\(String(name.prefix(60)))-\(run).jsonl"))
        }
        if imported > 0 && imported % 200 == 0 {
            // Keep the scratch destination small.
            generation += 1
            destination = try IOASIDStore(path: scratch + "/destination-\(generation)", options: o)
            imported += 1
        }
    }
    let seconds = Date().timeIntervalSince(started)
    print(String(format: "fuzz-import: runs=%d accepted=%d imported=%d rejected=%d deep-checks=%d outcomes=%d failures=%d crashes=0 in %.1f s",
                 options.runs, accepted, imported, rejected, deepChecks, outcomes.count, failures, seconds))
    return failures == 0 ? 0 : 2
}

@MainActor func mutate(_ input: inout [UInt8], seeds: [[UInt8]]) {
    let interesting: [UInt8] = Array("{}[]\":,\n 0123456789-eE.abcdeftrunl\\\u{7f}".utf8) + [0, 0xff, 0xc3]
    switch rng.next() % 9 {
    case 0 where !input.isEmpty:  // flip a bit
        input[Int(rng.next() % UInt64(input.count))] ^= 1 << UInt8(rng.next() % 8)
    case 1 where !input.isEmpty:  // set an interesting byte
        input[Int(rng.next() % UInt64(input.count))] = interesting[Int(rng.next() % UInt64(interesting.count))]
    case 2:  // insert bytes
        let at = Int(rng.next() % UInt64(input.count + 1))
        input.insert(contentsOf: (0...(rng.next() % 4)).map { _ in interesting[Int(rng.next() % UInt64(interesting.count))] }, at: at)
    case 3 where !input.isEmpty:  // delete a range
        let at = Int(rng.next() % UInt64(input.count))
        input.removeSubrange(at..<min(input.count, at + Int(rng.next() % 16) + 1))
    case 4:  // truncate
        input = Array(input.prefix(Int(rng.next() % UInt64(input.count + 1))))
    case 5, 6:  // swap, duplicate or drop whole lines
        var lines = input.split(separator: 0x0a, omittingEmptySubsequences: false).map(Array.init)
        guard lines.count > 1 else { return }
        let a = Int(rng.next() % UInt64(lines.count)), b = Int(rng.next() % UInt64(lines.count))
        switch rng.next() % 3 {
        case 0: lines.swapAt(a, b)
        case 1: lines.insert(lines[a], at: b)
        default: lines.remove(at: a)
        }
        input = Array(lines.joined(separator: [0x0a]))
    case 7:  // splice another seed's tail
        let other = seeds[Int(rng.next() % UInt64(seeds.count))]
        input = Array(input.prefix(Int(rng.next() % UInt64(input.count + 1)))) + Array(other.suffix(Int(rng.next() % UInt64(other.count + 1))))
    default:  // change a number
        guard let digit = input.indices.filter({ input[$0] >= 0x30 && input[$0] <= 0x39 }).randomElement(using: &rng) else { return }
        input[digit] = 0x30 + UInt8(rng.next() % 10)
    }
}

/// Recomputes the trailer's checksum and count so that deeper checks run.
func reseal(_ input: inout [UInt8]) {
    var lines = input.split(separator: 0x0a, omittingEmptySubsequences: false).map(Array.init)
    if lines.last == [] { lines.removeLast() }
    guard lines.count >= 2, String(decoding: lines.last!, as: UTF8.self).contains("\"end\"") else { return }
    lines.removeLast()
    let body = Array(lines.joined(separator: [0x0a])) + [0x0a]
    let digest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
    input = body + Array("{\"count\":\(lines.count - 1),\"end\":true,\"sha256\":\"\(digest)\"}\n".utf8)
}

// MARK: Command-line arguments

@MainActor func fuzzCLI() -> Int32 {
    let commands: [[String]] = [
        [], ["init"], ["status"], ["capacity"], ["set", "create"], ["set", "list"], ["set", "show"], ["set", "ids"],
        ["set", "adjust"], ["set", "free"], ["alloc"], ["free"], ["find"], ["find-set"], ["attach"], ["detach"],
        ["migrate", "export"], ["migrate", "import"], ["migrate", "complete"], ["migrate", "abort"],
        ["events", "subscribe"], ["events", "list"], ["events", "pending"], ["events", "tail"], ["events", "ack"],
        ["events", "unsubscribe"], ["hold"], ["release"], ["verify"], ["backup"], ["demo"], ["bogus"],
    ]
    let flags = [
        "--store", "--json", "--verbose", "--set", "--quota", "--token", "--min", "--max", "--data", "--guest", "--kind",
        "--holder", "--through", "--capacity", "--system-quota", "--out", "--follow", "--ack", "--destroy", "--repair",
        "--compact", "--limit", "--poll", "--help", "-h", "--version", "--", "-", "--set=", "--quota=7",
    ]
    let values = [
        "0", "1", "7", "-1", "65535", "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
        "", " ", "x", "0x", "0xzz", "c0ffee", "abc", "ALLOC", "free", "set-create", "bogus", "vm:é", "/tmp", "-",
        String(repeating: "9", count: 40), String(repeating: "a", count: 300), "1e3", "+5", "٣", "\u{0}",
    ]
    // Pieces of the quick lookups' forms (`find-set ID`, `find ID --set SID`) and their near misses,
    // for one run in four: most such vectors are quick forms or one piece away from one.
    let quickPieces: [[String]] = [
        ["7"], ["0042"], ["4294967295"], ["4294967296"], ["+7"], ["-7"], ["7 "], ["--store", "/tmp"], ["--store=/tmp"],
        ["--store=a=b"], ["--store", "-x"], ["--store="], ["--store"], ["--json"], ["--set", "2"], ["--set=2"], ["--set", "x"],
        ["--set"], ["--guest", "101"], ["--verbose"], ["--"], ["-h"], ["--socket", "/s"], ["find"], ["find-set"],
    ]
    var parsed = 0, usage = 0, help = 0, failures = 0
    for run in 0..<options.runs {
        var argv: [String]
        if run % 4 == 3 {
            argv = [rng.next() % 2 == 0 ? "find-set" : "find"]
            for _ in 0..<(1 + rng.next() % 4) {
                let piece = quickPieces[Int(rng.next() % UInt64(quickPieces.count))]
                // Global options may come before the command name.
                if rng.next() % 4 == 0 { argv.insert(contentsOf: piece, at: 0) } else { argv += piece }
            }
        } else {
            argv = commands[Int(rng.next() % UInt64(commands.count))]
            for _ in 0..<(rng.next() % 7) {
                argv.append(rng.next() % 2 == 0 ? flags[Int(rng.next() % UInt64(flags.count))] : values[Int(rng.next() % UInt64(values.count))])
            }
        }
        if let disagreement = QuickLookup.disagreement(argv) {
            failures += 1
            print("run \(run): \(argv) is a quick lookup, but \(disagreement)")
        }
        do {
            _ = try IOASIDCommand.parseAsRoot(argv)
            parsed += 1
        } catch {
            let code = IOASIDCommand.exitCode(for: error).rawValue
            _ = IOASIDCommand.message(for: error)
            if code == 0 {
                help += 1
            } else if code == 64 {
                usage += 1
            } else {
                failures += 1
                print("run \(run): \(argv) exited \(code): \(IOASIDCommand.message(for: error))")
            }
        }
    }
    let seconds = Date().timeIntervalSince(started)
    print(String(format: "fuzz-cli: runs=%d parsed=%d usage-errors=%d help=%d failures=%d crashes=0 in %.1f s",
                 options.runs, parsed, usage, help, failures, seconds))
    return failures == 0 ? 0 : 2
}
