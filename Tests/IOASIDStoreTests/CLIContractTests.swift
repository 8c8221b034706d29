import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

/// docs/cli-json.md, read as data: the exit status of each error code, the
/// documented fields and the documented commands.
struct OutputContract {
    let exitStatus: [String: Int32]
    let fields: Set<String>
    let commands: Set<String>

    static let path = SwiftSnippet.packageRoot + "/docs/cli-json.md"

    init() throws {
        let text = try String(contentsOfFile: Self.path, encoding: .utf8)
        var section = ""
        var exitStatus: [String: Int32] = [:]
        var fields = Set<String>()
        var commands = Set<String>()
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { section = String(line.dropFirst(3)) }
            guard line.hasPrefix("| `") else { continue }
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let first = cells.first, first.hasPrefix("`"), first.hasSuffix("`") else { continue }
            let name = String(first.dropFirst().dropLast())
            switch section {
            case "Error codes": exitStatus[name] = cells.count > 1 ? Int32(cells[1]) : nil
            case "Fields": fields.insert(name)
            case "Commands": commands.insert(name)
            default: break
            }
        }
        self.exitStatus = exitStatus
        self.fields = fields
        self.commands = commands
    }

    /// Every command path of the built tool (`ioasid set create`, …), from its own help dump.
    static func toolCommands() throws -> Set<String> {
        let dump = try CLI.run(["--experimental-dump-help"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        var found = Set<String>()
        func walk(_ command: [String: Any], _ path: [String]) {
            let name = command["commandName"] as? String ?? ""
            let here = path + [name]
            let subcommands = (command["subcommands"] as? [[String: Any]] ?? []).filter { $0["commandName"] as? String != "help" }
            if subcommands.isEmpty {
                found.insert(here.joined(separator: " "))
            } else {
                for sub in subcommands { walk(sub, here) }
            }
        }
        walk(try #require(object["command"] as? [String: Any]), [])
        return found
    }
}

@Suite("The output contract of docs/cli-json.md, for every command", .serialized)
struct CLIContractTests {
    /// One invocation: arguments after `--store S --json`, what it must exit with, and its error code if it fails.
    struct Case: CustomStringConvertible {
        let arguments: [String]
        let status: Int32
        let code: String?
        var input: String?
        var stream = false
        var ownStore = false

        var description: String { arguments.joined(separator: " ") }
    }

    static func ok(_ arguments: String..., stream: Bool = false) -> Case { Case(arguments: arguments, status: 0, code: nil, stream: stream) }
    static func fails(_ status: Int32, _ code: String, _ arguments: String...) -> Case { Case(arguments: arguments, status: status, code: code) }

    static func isRFC3339(_ text: String) -> Bool {
        (try? #/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/#.wholeMatch(in: text)) != nil
    }

    /// Checks one JSON value against the contract; returns the problems found.
    static func problems(in value: Any, contract: OutputContract, at path: String = "") -> [String] {
        var found: [String] = []
        if let object = value as? [String: Any] {
            for (key, inner) in object {
                if !contract.fields.contains(key) && !path.hasSuffix(".fields") { found.append("\(path).\(key) is not a documented field") }
                if ["time", "createdAt", "oldestUnacknowledged", "renewedAt"].contains(key) {
                    if let text = inner as? String {
                        if !Self.isRFC3339(text) { found.append("\(path).\(key) = \(text) is not RFC 3339 UTC") }
                    } else {
                        found.append("\(path).\(key) is not a time string")
                    }
                }
                if inner is NSNull { found.append("\(path).\(key) is null (omit it)") }
                if let text = inner as? String, text.isEmpty, key != "detail" { found.append("\(path).\(key) is empty (omit it)") }
                found += problems(in: inner, contract: contract, at: path + "." + key)
            }
        } else if let array = value as? [Any] {
            for element in array { found += problems(in: element, contract: contract, at: path + "[]") }
        }
        return found
    }

    @Test("The contract check flags an undocumented field, a millisecond time, an empty string and a null")
    func contractCheckCanFail() throws {
        let contract = try OutputContract()
        #expect(Self.problems(in: ["id": 1, "set": 2, "time": "2025-03-01T12:34:56.789Z"], contract: contract).isEmpty)
        #expect(Self.problems(in: ["setID": 2], contract: contract).count == 1)
        #expect(Self.problems(in: ["time": 1_740_000_000_000], contract: contract).count == 1)
        #expect(Self.problems(in: ["events": [["time": "2025-03-01 12:34:56"]]], contract: contract).count == 1)
        #expect(Self.problems(in: ["data": ""], contract: contract).count == 1)
        #expect(Self.problems(in: ["guest": NSNull()], contract: contract).count == 1)
    }

    @Test("Every command of the tool is in the contract's command table, and every row is a command")
    func everyCommandDocumented() throws {
        let contract = try OutputContract()
        let tool = Set(try OutputContract.toolCommands().map { $0 })
        let documented = Set(contract.commands.filter { $0 != "ioasid --version" })
        #expect(tool.subtracting(documented).isEmpty, "undocumented: \(tool.subtracting(documented).sorted())")
        #expect(documented.subtracting(tool).isEmpty, "not commands: \(documented.subtracting(tool).sorted())")
        // Each error code the library defines has a documented exit status equal to its category's.
        for code in ["quotaExceeded", "noSuchSet", "corruptStore", "invalidArgument", "usage"] {
            #expect(contract.exitStatus[code] != nil, "\(code) has no exit status")
        }
        for name in contract.exitStatus.keys where name != "usage" {
            #expect(IOASIDError.Code(name: name) != nil, "\(name) is documented but is no error code")
        }
    }

    @Test("Every command with --json: one object (or JSON Lines for streams), documented fields, RFC 3339 times; every failure a JSON error with its documented exit status")
    func everyCommandWithJSON() throws {
        let contract = try OutputContract()
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = dir.child("store")
        let export = dir.child("vm.export")
        let bad = dir.child("bad.export")
        let owners = dir.child("owners")
        try "{\"format\":\"nope\"}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let cases: [Case] = [
            Self.ok("--version"),
            Self.fails(3, "notInitialized", "status"),
            Self.ok("init", "--capacity", "4096", "--system-quota", "16"),
            Self.fails(1, "alreadyInitialized", "init"),
            Self.fails(64, "usage", "init", "--capacity", "2000000"),
            Self.ok("status"),
            Self.ok("capacity"),
            Self.ok("capacity", "8192"),
            Self.fails(1, "capacityInUse", "capacity", "8"),
            Self.ok("capacity", "4096"),
            Self.ok("set", "create", "--token", "vm:a", "--quota", "4"),
            Self.fails(1, "duplicateToken", "set", "create", "--token", "vm:a", "--quota", "4"),
            Self.fails(1, "capacityExhausted", "set", "create", "--token", "vm:b", "--quota", "999999"),
            Self.fails(64, "usage", "set", "create", "--token", "bad\u{1B}]0;x\u{07}", "--quota", "1"),
            Self.ok("set", "list"),
            Self.ok("set", "show", "2"),
            Self.ok("set", "show", "--token", "vm:a"),
            Self.fails(2, "noSuchSet", "set", "show", "9"),
            Self.fails(2, "noSuchSet", "set", "show", "--token", "vm:nobody"),
            Self.fails(64, "usage", "set", "show"),
            Self.ok("alloc", "--set", "2", "--guest", "101", "--data", "01f000"),
            Self.ok("alloc", "--set", "2", "--count", "2"),
            Self.fails(1, "quotaExceeded", "alloc", "--set", "2", "--count", "2"),
            Self.fails(2, "noSuchSet", "alloc", "--set", "9"),
            Self.fails(64, "usage", "alloc", "--set", "1", "--min", "5", "--max", "4"),
            Self.fails(64, "usage", "alloc", "--set", "2", "--data", "abc"),
            Self.fails(64, "usage", "alloc"),
            Self.fails(1, "rangeExhausted", "alloc", "--set", "1", "--min", "1", "--max", "3"),
            Self.ok("set", "ids", "2"),
            Self.ok("set", "adjust", "2", "--quota", "8"),
            Self.fails(1, "quotaBelowUsage", "set", "adjust", "2", "--quota", "1"),
            Self.ok("find", "1"),
            Self.fails(1, "wrongSet", "find", "1", "--set", "1"),
            Self.fails(2, "noSuchID", "find", "4000"),
            Self.ok("find", "--set", "2", "--guest", "101"),
            Self.fails(2, "noSuchGuest", "find", "--set", "2", "--guest", "7"),
            Self.fails(64, "usage", "find"),
            Self.ok("find-set", "1"),
            Self.fails(2, "noSuchID", "find-set", "4000"),
            Self.ok("data", "2", "--set", "2", "0a0b"),
            Self.ok("data", "2", "--set", "2"),
            Self.ok("data", "2", "--set", "2", "--clear"),
            Self.fails(1, "wrongSet", "data", "2", "--set", "1", "00"),
            Self.fails(64, "usage", "data", "2", "--set", "2", "0"),
            Self.ok("attach", "2", "--set", "2", "--guest", "102"),
            Self.fails(1, "duplicateGuest", "attach", "3", "--set", "2", "--guest", "102"),
            Self.fails(1, "guestAlreadyAttached", "attach", "2", "--set", "2", "--guest", "103"),
            Self.ok("detach", "2", "--set", "2"),
            Self.fails(2, "noSuchGuest", "detach", "2", "--set", "2"),
            Self.ok("events", "subscribe", "kvm"),
            Self.fails(1, "duplicateSubscriber", "events", "subscribe", "kvm"),
            Self.fails(64, "usage", "events", "subscribe", "x", "--kind", "nope"),
            Self.fails(2, "noSuchSet", "events", "subscribe", "y", "--set", "9"),
            Self.ok("hold", "3", "--set", "2", "--holder", "vfio"),
            Self.ok("holders", "3"),
            Self.fails(2, "noSuchID", "holders", "4000"),
            Self.ok("free", "3", "--set", "2"),
            Self.fails(1, "idFreePending", "hold", "3", "--set", "2", "--holder", "x"),
            Self.fails(2, "noSuchID", "free", "4000", "--set", "2"),
            Self.fails(1, "wrongSet", "free", "1", "--set", "1"),
            Self.fails(64, "usage", "free", "--set", "2"),
            Self.ok("release", "3", "--set", "2", "--holder", "vfio"),
            Self.fails(2, "noSuchHold", "release", "3", "--set", "2", "--holder", "nobody"),
            Self.ok("events", "list"),
            Self.ok("events", "pending", "kvm"),
            Self.fails(2, "noSuchSubscriber", "events", "pending", "nobody"),
            Self.fails(64, "usage", "events", "pending", "kvm", "--limit", "0"),
            Self.ok("events", "tail", "kvm", stream: true),
            Self.ok("events", "ack", "kvm", "--through", "1"),
            Self.fails(64, "invalidArgument", "events", "ack", "kvm", "--through", "999999"),
            Case(arguments: ["batch"], status: 0, code: nil, input: "# two at once\nalloc --set 2\nset create --token 'vm c' --quota 1\n"),
            Case(arguments: ["batch"], status: 2, code: "noSuchID", input: "alloc --set 2\nfree 4000 --set 2\n"),
            Case(arguments: ["batch"], status: 64, code: "invalidArgument", input: "alloc --set 2\nfrobnicate\n"),
            Case(arguments: ["batch"], status: 64, code: "invalidArgument", input: ""),
            Self.ok("migrate", "export", "--set", "2", "--out", export),
            Self.fails(64, "invalidArgument", "migrate", "export", "--set", "2", "--out", export),
            Self.fails(1, "setFrozen", "alloc", "--set", "2"),
            Self.ok("migrate", "validate", export),
            Self.fails(1, "exportUnsupported", "migrate", "validate", bad),
            Self.fails(64, "invalidArgument", "migrate", "validate", dir.child("missing")),
            Self.fails(1, "duplicateToken", "migrate", "import", export),
            Self.ok("migrate", "import", export, "--token", "vm:copy"),
            Self.fails(1, "exportAlreadyImported", "migrate", "import", export, "--token", "vm:copy2"),
            Self.ok("migrate", "abort", "2"),
            Self.fails(1, "setNotFrozen", "migrate", "abort", "2"),
            Self.fails(1, "setNotFrozen", "migrate", "complete", "2"),
            Self.ok("migrate", "export", "--set", "2", stream: true),
            Self.ok("migrate", "complete", "2"),
            Self.fails(2, "noSuchSet", "migrate", "export", "--set", "2"),
            Self.ok("set", "free", "4"),
            Self.ok("set", "free", "4", "--destroy"),
            Self.fails(1, "systemSetProtected", "set", "free", "1", "--destroy"),
            Self.fails(2, "noSuchSet", "set", "free", "9"),
            Self.ok("verify"),
            Self.ok("verify", "--repair"),
            Self.ok("backup", dir.child("backup")),
            Self.fails(64, "invalidArgument", "backup", dir.child("backup")),
            Self.ok("backup", dir.child("backup"), "--force"),
            Self.ok("dump", stream: true),
            Self.ok("restore", dir.child("backup"), dir.child("restored")),
            Self.fails(64, "invalidArgument", "restore", dir.child("backup"), dir.child("restored")),
            Self.fails(3, "notInitialized", "restore", dir.child("missing"), dir.child("restored2")),
            Case(arguments: ["--store", dir.child("restored"), "events", "ack", "kvm", "--through", "999999"], status: 1, code: "storeRestored", ownStore: true),
            Self.ok("events", "subscribe", "obs", "--observe", "--max-lag", "100000", "--max-age", "1h"),
            Self.ok("events", "subscribe", "next", "--after", "kvm"),
            Self.fails(2, "noSuchSubscriber", "events", "subscribe", "z", "--after", "nobody"),
            Self.fails(64, "usage", "events", "subscribe", "z", "--max-age", "soon"),
            Self.fails(1, "subscriberHasFollowers", "events", "unsubscribe", "kvm"),
            Self.ok("events", "unsubscribe", "next"),
            Self.ok("events", "resync", "obs"),
            Self.fails(2, "noSuchSubscriber", "events", "resync", "nobody"),
            Self.ok("events", "consume", "obs", "--once", "--", "true"),
            Self.fails(64, "usage", "events", "consume", "obs"),
            Self.fails(64, "invalidArgument", "events", "consume", "obs", "--once", "--", "no-such-command-anywhere"),
            Self.fails(2, "noSuchSubscriber", "events", "consume", "nobody", "--once", "--", "true"),
            Self.ok("events", "unsubscribe", "kvm"),
            Self.fails(2, "noSuchSubscriber", "events", "unsubscribe", "kvm"),
            Case(arguments: ["--store", owners, "init", "--capacity", "4096", "--system-quota", "16"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "set", "create", "--token", "vm:l", "--quota", "2", "--lease", "1ms", "--owner-pid", "1"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "set", "renew", "2"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "set", "renew", "9"], status: 2, code: "noSuchSet", ownStore: true),
            Case(arguments: ["--store", owners, "set", "renew", "1"], status: 64, code: "invalidArgument", ownStore: true),
            Case(arguments: ["--store", owners, "set", "create", "--token", "vm:g", "--quota", "1", "--owner-pid", "999999999"], status: 64, code: "invalidArgument", ownStore: true),
            Case(arguments: ["--store", owners, "set", "create", "--token", "vm:g", "--quota", "1", "--lease", "0s"], status: 64, code: "usage", ownStore: true),
            Case(arguments: ["--store", owners, "events", "subscribe", "s", "--max-lag", "1"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "alloc", "--set", "2", "--count", "2"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "events", "ack", "s", "--through", "1"], status: 1, code: "subscriberLapsed", ownStore: true),
            Case(arguments: ["--store", owners, "hold", "1", "--set", "2", "--holder", "h"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "free", "1", "--set", "2", "--wait", "--timeout", "50ms"], status: 1, code: "timedOut", ownStore: true),
            Case(arguments: ["--store", owners, "free", "2", "--set", "2", "--wait"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "find", "1"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "reap"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", owners, "reap"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", dir.child("demo"), "demo"], status: 0, code: nil, ownStore: true),
            Case(arguments: ["--store", dir.child("nothing"), "serve"], status: 3, code: "notInitialized", ownStore: true),
            Self.fails(64, "usage", "help", "bogus"),
            Self.fails(64, "usage", "frobnicate"),
            Case(arguments: ["--store", "", "status"], status: 64, code: "usage", ownStore: true),
        ]
        var covered = Set<String>()
        let tool = try OutputContract.toolCommands()
        for c in cases {
            let arguments = (c.ownStore ? [] : ["--store", store]) + ["--json"] + c.arguments
            let result = try CLI.run(arguments, input: c.input)
            #expect(result.status == c.status, "\(c): exit \(result.status), stderr \(result.stderr)")
            let words = (c.ownStore ? Array(c.arguments.dropFirst(2)) : c.arguments).filter { !$0.hasPrefix("-") }
            for length in (1...min(3, max(1, words.count))).reversed() {
                let candidate = (["ioasid"] + words.prefix(length)).joined(separator: " ")
                if tool.contains(candidate) {
                    covered.insert(candidate)
                    break
                }
            }
            if result.status == 0 {
                #expect(result.stderr.isEmpty, "\(c): stderr with --json on success: \(result.stderr)")
                let lines = result.stdout.split(separator: "\n")
                #expect(c.stream || lines.count == 1, "\(c): \(lines.count) lines on stdout")
                for line in lines {
                    let value = try? JSONSerialization.jsonObject(with: Data(line.utf8))
                    #expect(value is [String: Any], "\(c): not a JSON object: \(line.prefix(200))")
                    // The export stream is the export format, not this contract's objects.
                    if let value, !(c.arguments.first == "migrate" && c.stream) {
                        let problems = Self.problems(in: value, contract: contract)
                        #expect(problems.isEmpty, "\(c): \(problems)")
                    }
                }
            } else {
                #expect(result.stdout.isEmpty, "\(c): stdout on failure: \(result.stdout)")
                let object = try? JSONSerialization.jsonObject(with: Data(result.stderr.utf8)) as? [String: Any]
                let error = object?["error"] as? [String: Any]
                let code = error?["code"] as? String
                #expect(code != nil && error?["message"] is String, "\(c): stderr is not a JSON error: \(result.stderr)")
                if let expected = c.code { #expect(code == expected, "\(c): \(result.stderr)") }
                if let code { #expect(contract.exitStatus[code] == result.status, "\(c): \(code) exits \(result.status), documented \(contract.exitStatus[code].map(String.init) ?? "nowhere")") }
                if let object { #expect(Self.problems(in: object, contract: contract).isEmpty, "\(c)") }
            }
        }
        covered.insert("ioasid")
        let missing = tool.subtracting(covered)
        #expect(missing.isEmpty, "commands the contract test does not run: \(missing.sorted())")
    }

    @Test("Plain errors have one style: `ioasid: error: MESSAGE (code)`, argument-parser's included", arguments: [
        ["status"], ["alloc"], ["frobnicate"], ["help", "bogus"], ["init", "--capacity", "1"], ["find", "9"],
    ])
    func plainErrorStyle(arguments: [String]) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let result = try CLI.run(["--store", dir.child("none")] + arguments)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let first = String(result.stderr.split(separator: "\n").first ?? "")
        #expect((try? #/^ioasid: error: .+ \([a-zA-Z]+\)$/#.wholeMatch(in: first)) != nil, "\(first)")
        #expect(!result.stderr.contains("Error:"), "argument-parser's own style leaked: \(result.stderr)")
        for line in result.stderr.split(separator: "\n") {
            #expect(line.hasPrefix("ioasid: "), "\(line)")
        }
    }

    @Test("Control characters in names are escaped in plain output and refused as arguments")
    func escapes() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = dir.child("store")
        _ = try CLI.run(["--store", store, "init", "--capacity", "64", "--system-quota", "8"])
        let hostile = "vm:\u{1B}]0;pwned\u{07}"
        let refused = try CLI.run(["--store", store, "set", "create", "--token", hostile, "--quota", "1"])
        #expect(refused.status == 64)
        #expect(!refused.stderr.contains("\u{1B}"), "the error echoed ESC raw")
        #expect(refused.stderr.contains("\\u{1B}"))
    }
}
