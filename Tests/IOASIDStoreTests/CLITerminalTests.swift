import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

/// The CLI where it meets terminals, pipes, full disks, shells and `man`.
@Suite("ioasid on terminals, pipes, shells and man", .serialized)
struct CLITerminalTests {
    static let ioasid = CLI.path(of: "ioasid")

    /// A shell command line with every argument quoted.
    static func quoted(_ words: [String]) -> String {
        words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    /// Runs `command` under `script`, on a pseudo-terminal `columns` wide; returns everything it drew.
    static func onTerminal(_ command: String, columns: Int = 60, environment: [String: String] = ["TERM": "xterm"]) throws -> CLI.Result {
        let unset = environment["NO_COLOR"] == nil ? "unset NO_COLOR; " : ""
        return try CLI.run(["-qec", "\(unset)stty cols \(columns) rows 24; \(command)", "/dev/null"], product: "/usr/bin/script", environment: environment)
    }

    /// A store with a set of `count` IDs (set 2), and its path.
    static func store(in dir: TemporaryDirectory, count: Int) throws -> String {
        let path = dir.child("store")
        #expect(try CLI.run(["--store", path, "init", "--capacity", "1048576"]).status == 0)
        #expect(try CLI.run(["--store", path, "set", "create", "--token", "vm:big", "--quota", String(max(10, count))]).status == 0)
        if count > 0 { #expect(try CLI.run(["--store", path, "alloc", "--set", "2", "--count", String(count)]).status == 0) }
        return path
    }

    // MARK: Progress

    @Test("Progress shows on a terminal (verify, export, import in two phases), fitted to its width; none when piped or with --json")
    func progressOnTerminal() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try Self.store(in: dir, count: 70_000)
        let target = dir.child("target")
        _ = try CLI.run(["--store", target, "init"])
        let export = dir.child("vm.export")

        let verify = try Self.onTerminal(Self.quoted([Self.ioasid, "--store", store, "verify"]), columns: 60)
        #expect(verify.status == 0, "\(verify.stdout)")
        #expect(verify.stdout.contains("verifying ["), "no progress bar on a terminal: \(verify.stdout.debugDescription)")
        #expect(verify.stdout.contains("█"), "a capable terminal gets the Unicode bar")
        for frame in verify.stdout.split(whereSeparator: { $0 == "\r" || $0 == "\n" }) {
            let visible = frame.replacingOccurrences(of: "\u{1B}[K", with: "")
            #expect(visible.count <= 60, "a progress line is wider than the terminal: \(visible.debugDescription)")
        }

        let exported = try Self.onTerminal(Self.quoted([Self.ioasid, "--store", store, "migrate", "export", "--set", "2", "--out", export]))
        #expect(exported.status == 0, "\(exported.stdout)")
        #expect(exported.stdout.contains("exporting ["))

        let imported = try Self.onTerminal(Self.quoted([Self.ioasid, "--store", target, "migrate", "import", export]))
        #expect(imported.status == 0, "\(imported.stdout)")
        let validating = imported.stdout.range(of: "validating [")
        let importing = imported.stdout.range(of: "importing [")
        #expect(validating != nil && importing != nil, "import shows both phases: \(imported.stdout.debugDescription.prefix(600))")
        if let validating, let importing { #expect(validating.lowerBound < importing.lowerBound) }

        // Piped (the test's own pipes are no terminal): no progress at all.
        let piped = try CLI.run(["--store", store, "verify"])
        #expect(piped.status == 0)
        #expect(piped.stderr.isEmpty, "progress on a pipe: \(piped.stderr.debugDescription)")
        // On a terminal with --json: none either.
        let json = try Self.onTerminal(Self.quoted([Self.ioasid, "--store", store, "--json", "verify"]))
        #expect(!json.stdout.contains("verifying"))
    }

    @Test("free-set of many IDs shows what it does and the time spent, then erases it")
    func freeSetProgress() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try Self.store(in: dir, count: 200_000)
        let result = try Self.onTerminal(Self.quoted([Self.ioasid, "--store", store, "set", "free", "2", "--destroy"]))
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.contains("freeing 200,000 IDs of set 2"), "\(result.stdout.debugDescription.prefix(400))")
        #expect(result.stdout.contains("freed 200,000 IDs of set 2; set destroyed"))
    }

    @Test("TERM=dumb and NO_COLOR get ASCII progress without escape sequences", arguments: [["TERM": "dumb"], ["TERM": "xterm", "NO_COLOR": "1"]])
    func asciiProgress(environment: [String: String]) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try Self.store(in: dir, count: 1000)
        let result = try Self.onTerminal(Self.quoted([Self.ioasid, "--store", store, "verify"]), environment: environment)
        #expect(result.status == 0)
        #expect(result.stdout.contains("verifying [#"), "\(result.stdout.debugDescription)")
        #expect(!result.stdout.contains("\u{1B}"), "escape sequences for a dumb terminal: \(result.stdout.debugDescription)")
        #expect(result.stdout.unicodeScalars.allSatisfy { $0.isASCII }, "non-ASCII for a dumb terminal")
    }

    // MARK: I/O failures

    @Test("Writing to a full disk or a closed pipe exits 3 with the OS error, never a crash or a silent success")
    func outputFailures() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try Self.store(in: dir, count: 20_000)
        let full = try CLI.run(["-c", "\(Self.quoted([Self.ioasid, "--store", store, "status"])) > /dev/full"], product: "/bin/sh")
        #expect(full.status == 3, "\(full.stderr)")
        #expect(full.stderr.contains("the disk is full"), "\(full.stderr)")
        #expect(full.stderr.hasPrefix("ioasid: error: cannot write to standard output"))
        #expect(full.stderr.contains("ioasid: hint: free space"), "\(full.stderr)")

        let jsonFull = try CLI.run(["-c", "\(Self.quoted([Self.ioasid, "--store", store, "--json", "set", "ids", "2"])) > /dev/full"], product: "/bin/sh")
        #expect(jsonFull.status == 3)
        #expect(jsonFull.stderr.contains("\"code\":\"storageFailure\""))

        // export | head: the exporter sees EPIPE (SIGPIPE is ignored), says so, exits 3 and unfreezes the set.
        let pipe = try CLI.run(
            ["-c", "\(Self.quoted([Self.ioasid, "--store", store, "migrate", "export", "--set", "2"])) | head -c 100 > /dev/null; echo \"status ${PIPESTATUS[0]}\""],
            product: "/bin/bash"
        )
        #expect(pipe.stdout.contains("status 3"), "\(pipe.stdout) \(pipe.stderr)")
        #expect(pipe.stderr.contains("broken pipe"), "\(pipe.stderr)")
        #expect(pipe.stderr.contains("was unfrozen"), "\(pipe.stderr)")
        #expect(pipe.stderr.contains("ioasid: hint: the command reading the output stopped"), "\(pipe.stderr)")
        let set = try #require(try CLI.run(["--store", store, "--json", "set", "show", "2"]).json as? [String: Any])
        #expect(set["frozen"] as? Bool == false)

        let dump = try CLI.run(["-c", "\(Self.quoted([Self.ioasid, "--store", store, "dump"])) | head -n 1 > /dev/null; echo \"status ${PIPESTATUS[0]}\""], product: "/bin/bash")
        #expect(dump.stdout.contains("status 3"), "\(dump.stdout) \(dump.stderr)")
    }

    @Test("A storage failure's hint follows the system error: a path too long or missing points at the path, not at disk space")
    func storageFailureHints() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let tooLong = dir.path + "/" + String(repeating: "a", count: 300)
        for arguments in [["--store", tooLong, "status"], ["--store", tooLong, "init"], ["--store", tooLong + "/x", "init"]] {
            let result = try CLI.run(arguments)
            #expect(result.status == 3, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("File name too long"), "\(result.stderr)")
            #expect(result.stderr.contains("ioasid: hint: check the path"), "\(result.stderr)")
            #expect(!result.stderr.contains("disk space"), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: tooLong), "nothing is created")
        }
        let json = try CLI.run(["--store", tooLong, "--json", "status"])
        #expect(json.errorCode == "storageFailure", "\(json.stderr)")
        #expect((json.errorDocument?["hint"] as? String)?.hasPrefix("check the path") == true, "\(json.stderr)")
    }

    @Test("--verbose logs each operation and its commit at debug level on stderr; a batch is one commit")
    func verboseLogging() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let store = try Self.store(in: dir, count: 0)
        let alloc = try CLI.run(["--store", store, "--verbose", "alloc", "--set", "2"])
        #expect(alloc.out == "1")
        #expect(alloc.stderr.contains("debug ioasid:") && alloc.stderr.contains("operation alloc"), "\(alloc.stderr)")
        #expect(alloc.stderr.contains("commit alloc: durable"), "\(alloc.stderr)")
        let batch = try CLI.run(["--store", store, "--verbose", "batch"], input: "alloc --set 2\nalloc --set 2 --guest 9\nfree 1 --set 2\n")
        #expect(batch.status == 0, "\(batch.stderr)")
        #expect(batch.out == "2\n3\nfreed 1 (free)")
        #expect(batch.stderr.components(separatedBy: "commit batch: durable").count == 2, "one commit for the batch: \(batch.stderr)")
        #expect(batch.stderr.components(separatedBy: "operation alloc --set 2").count == 3)
        // All or nothing: a refused last line leaves the store as it was.
        let before = try CLI.run(["--store", store, "--json", "dump"]).stdout
        let refused = try CLI.run(["--store", store, "batch"], input: "alloc --set 2\nattach 2 --set 2 --guest 9\n")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("line 2 (attach 2 --set 2 --guest 9)"), "\(refused.stderr)")
        #expect(try CLI.run(["--store", store, "--json", "dump"]).stdout == before, "a refused batch changed the store")
    }

    // MARK: Completions and the man page

    /// Asks bash's completion function what `words` (the last one being completed) completes to.
    static func complete(_ words: [String], script: String, in directory: String) throws -> [String] {
        let driver = """
            cd \(quoted([directory]))
            source \(quoted([script]))
            COMP_WORDS=(\(quoted(words)))
            COMP_CWORD=\(words.count - 1)
            COMP_LINE="${COMP_WORDS[*]}"
            COMP_POINT=${#COMP_LINE}
            _ioasid ioasid "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let result = try CLI.run(["-c", driver], product: "/bin/bash", environment: ["PATH": CLI.productsDirectory + ":/usr/bin:/bin"])
        return result.stdout.split(separator: "\n").map(String.init).sorted()
    }

    @Test("Install puts completions and the man page in place: --store completes directories, --kind event kinds, set IDs and subscribers come from the store, and `man ioasid` works")
    func installAndComplete() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let prefix = dir.child("prefix")
        // Tools/test builds generate-manual beside the test binaries; building it from
        // inside a running `swift test` would wait for the build lock forever.
        try #require(
            FileManager.default.isExecutableFile(atPath: CLI.path(of: "generate-manual")),
            "generate-manual is not built next to the tests: run the suite with Tools/test"
        )
        let install = try CLI.run(
            [SwiftSnippet.packageRoot + "/Tools/install", "--prefix", prefix, "--bin", Self.ioasid],
            product: "/bin/bash"
        )
        #expect(install.status == 0, "\(install.stderr)")
        let script = prefix + "/share/bash-completion/completions/ioasid"
        #expect(FileManager.default.fileExists(atPath: script))
        #expect(FileManager.default.fileExists(atPath: prefix + "/share/zsh/site-functions/_ioasid"))
        #expect(FileManager.default.isExecutableFile(atPath: prefix + "/bin/ioasid"))

        let work = dir.child("work")
        try FileManager.default.createDirectory(atPath: work + "/dir-a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work + "/dir-b", withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: work + "/file-c", contents: Data()))
        #expect(try Self.complete(["ioasid", "--store", ""], script: script, in: work) == ["dir-a", "dir-b"])
        #expect(try Self.complete(["ioasid", "--store", "dir-"], script: script, in: work) == ["dir-a", "dir-b"])
        #expect(try Self.complete(["ioasid", "events", "subscribe", "x", "--kind", ""], script: script, in: work)
            == Event.Kind.allCases.map(\.rawValue).sorted())
        #expect(try Self.complete(["ioasid", "migrate", "import", "fi"], script: script, in: work) == ["file-c"])

        let store = work + "/store"
        _ = try CLI.run(["--store", store, "init", "--capacity", "4096"])
        _ = try CLI.run(["--store", store, "set", "create", "--token", "vm:a", "--quota", "3"])
        _ = try CLI.run(["--store", store, "events", "subscribe", "iommu-agent"])
        #expect(try Self.complete(["ioasid", "--store", store, "set", "show", ""], script: script, in: work) == ["1", "2"])
        #expect(try Self.complete(["ioasid", "--store", store, "alloc", "--set", ""], script: script, in: work) == ["1", "2"])
        #expect(try Self.complete(["ioasid", "--store", store, "events", "pending", ""], script: script, in: work) == ["iommu-agent"])

        let man = try CLI.run(["-c", "MANPATH=\(Self.quoted([prefix + "/share/man"])) MANWIDTH=80 man ioasid | cat"], product: "/bin/bash")
        #expect(man.status == 0, "\(man.stderr)")
        #expect(man.stdout.contains("ioasid — A persistent, crash-consistent IOASID"), "\(man.stdout.prefix(400))")
        #expect(man.stdout.contains("EXIT CODES"))
        #expect(man.stdout.contains("ioasid set create --token vm:6f1c2a --quota 1000"))
        #expect(!man.stderr.contains("warning"), "\(man.stderr)")
    }

    // MARK: Help

    @Test("Every command's help has an EXAMPLES section, no run of spaces mid-sentence and no absurd default; `help X` for an unknown X exits 64")
    func helpText() throws {
        let commands = try OutputContract.toolCommands().sorted()
        for command in commands {
            let words = Array(command.split(separator: " ").dropFirst().map(String.init))
            let help = try CLI.run(["help"] + words, environment: ["COLUMNS": "100"])
            #expect(help.status == 0, "\(command)")
            #expect(help.stdout.contains("EXAMPLES:"), "\(command) --help has no examples")
            #expect(!help.stdout.contains("9223372036854775807"), "\(command) shows Int.max as a default")
            #expect(!help.stdout.contains("$IOASID_STORE") || !command.hasSuffix("demo") || help.stdout.contains("is not used"), "\(command)")
            for line in help.stdout.split(separator: "\n") where !line.hasPrefix(" ") {
                #expect(!line.contains("   "), "\(command): a gap in \(line.debugDescription)")
            }
        }
        for bogus in [["help", "bogus"], ["help", "set", "bogus"]] {
            let result = try CLI.run(bogus)
            #expect(result.status == 64, "\(bogus)")
            #expect(result.stderr.hasPrefix("ioasid: error: no command '"), "\(result.stderr)")
        }
        let root = try CLI.run(["--help"])
        #expect(root.stdout.contains("EXIT CODES:\n  code  meaning\n  0     success"))
    }
}
