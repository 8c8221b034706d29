import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

/// A fenced code block of a Markdown file.
struct CodeBlock: CustomStringConvertible {
    let file: String
    let line: Int
    let language: String
    let code: String
    /// Preceded by `<!-- docs-test: skip (reason) -->`: shown, not run.
    let skipped: Bool

    var description: String { "\((file as NSString).lastPathComponent):\(line) (\(language))" }

    /// Every fenced block of `path`.
    static func blocks(in path: String) throws -> [CodeBlock] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        var blocks: [CodeBlock] = []
        var index = 0
        var lastText = ""
        while index < lines.count {
            let line = lines[index]
            if line.hasPrefix("```") {
                let language = String(line.dropFirst(3)).trimmingCharacters(in: .whitespaces)
                let start = index + 1
                var end = start
                while end < lines.count, !lines[end].hasPrefix("```") { end += 1 }
                blocks.append(CodeBlock(
                    file: path, line: start, language: language, code: lines[start..<min(end, lines.count)].joined(separator: "\n"),
                    skipped: lastText.hasPrefix("<!-- docs-test: skip")
                ))
                index = end + 1
                lastText = ""
                continue
            }
            if !line.trimmingCharacters(in: .whitespaces).isEmpty { lastText = line }
            index += 1
        }
        return blocks
    }

    var isShell: Bool { ["sh", "bash", "shell", "console"].contains(language) }
    var isSwift: Bool { language == "swift" }
    /// Blocks that are neither run nor compiled must say so: a `text` fence (or none), or the skip comment.
    var isIllustrative: Bool { skipped || language.isEmpty || language == "text" }
}

@Suite("README, DocC and runbook code blocks run or compile", .serialized)
struct DocumentationTests {
    static let root = SwiftSnippet.packageRoot
    static let doccArticles: [String] = {
        let dir = root + "/Sources/IOASIDStore/IOASIDStore.docc"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".md") }.sorted().map { dir + "/" + $0 }
    }()

    /// Runs `script` with bash (`set -euo pipefail`), the built `ioasid` first on PATH, in `directory`.
    static func bash(_ script: String, in directory: String, environment: [String: String] = [:]) throws -> CLI.Result {
        var env = environment
        env["PATH"] = CLI.productsDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        return try CLI.run(["-c", "set -euo pipefail\ncd '\(directory)'\n" + script], product: "/bin/bash", environment: env)
    }

    /// Type-checks and SIL-checks `source` (a whole file) against this build's modules; a warning
    /// other than an unused value fails too (so `await` binding to a synchronous overload fails).
    static func compile(_ source: String, fileName: String) throws -> (ok: Bool, output: String) {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let file = dir.child(fileName)
        try source.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try SwiftSnippet.check(file: file)
        let output = result.stdout + result.stderr
        let warnings = output.split(separator: "\n").filter { $0.contains("warning:") }
            .filter { !$0.contains("never used") && !$0.contains("never mutated") && !$0.contains("was written to, but never read") && !$0.contains("is unused") }
        return (result.status == 0 && warnings.isEmpty, output)
    }

    @Test("Every code block of README.md, docs/ and the DocC articles is run, compiled, or marked illustrative")
    func everyBlockAccountedFor() throws {
        let files = [Self.root + "/README.md", Self.root + "/docs/operations.md", Self.root + "/docs/cli-json.md"] + Self.doccArticles
        for file in files {
            for block in try CodeBlock.blocks(in: file) {
                #expect(block.isShell || block.isSwift || block.isIllustrative, "\(block): unknown fence language '\(block.language)'")
            }
        }
    }

    @Test("README's shell blocks run, each in a fresh directory")
    func readmeShell() throws {
        let blocks = try CodeBlock.blocks(in: Self.root + "/README.md").filter { $0.isShell && !$0.skipped }
        #expect(blocks.count >= 1)
        for block in blocks {
            let dir = try TemporaryDirectory()
            defer { dir.cleanup() }
            let result = try Self.bash(block.code, in: dir.path)
            #expect(result.status == 0, "\(block) failed: \(result.stderr)")
        }
    }

    @Test("README's Swift blocks compile as a program (top-level code) without warnings")
    func readmeSwift() throws {
        let blocks = try CodeBlock.blocks(in: Self.root + "/README.md").filter { $0.isSwift && !$0.skipped }
        #expect(blocks.count >= 1)
        for block in blocks {
            let result = try Self.compile(block.code, fileName: "main.swift")
            #expect(result.ok, "\(block) does not compile cleanly:\n\(result.output)")
        }
    }

    @Test("The compile check catches an await that binds to the synchronous overload (the old README example)")
    func compileCheckCanFail() throws {
        let old = """
            import IOASIDStore
            let store = try IOASIDStore(path: "/tmp/x")
            let vm = try store.createSet(token: "vm", quota: 1)
            let id = try await store.allocate(in: vm)
            """
        let result = try Self.compile(old, fileName: "main.swift")
        #expect(!result.ok, "the old example passed: \(result.output)")
        #expect(result.output.contains("warning:"), "\(result.output)")
    }

    /// What the DocC articles' shell blocks assume exists: a store with a VM set
    /// (`$vm`) holding `$pasid` and `$id`, 50 events (kept for a subscriber), and
    /// stores `A` (set 3) and `B`.
    /// `events tail --follow` waits forever by design; the harness drops `--follow`.
    static let doccShellPrelude = """
        ioasid init --capacity 65536 --system-quota 1024 >/dev/null
        vm=$(ioasid set create --token vm:6f1c2a --quota 1000)
        pasid=$(ioasid alloc --set "$vm")
        id=$(ioasid alloc --set "$vm")
        ioasid events subscribe audit >/dev/null
        ioasid alloc --set 1 --count 50 >/dev/null
        ioasid --store A init --capacity 4096 --system-quota 16 >/dev/null
        ioasid --store A set create --token vm:a --quota 4 >/dev/null
        ioasid --store A set create --token vm:b --quota 4 >/dev/null
        ioasid --store A alloc --set 3 --guest 7 >/dev/null
        ioasid --store B init --capacity 4096 --system-quota 16 >/dev/null
        ioasid() { local a=(); for w in "$@"; do [ "$w" = --follow ] || a+=("$w"); done; command ioasid "${a[@]}"; }

        """

    @Test("The DocC articles' shell blocks run against a temporary store", arguments: DocumentationTests.doccArticles)
    func doccShell(article: String) throws {
        for block in try CodeBlock.blocks(in: article) where block.isShell && !block.skipped {
            let dir = try TemporaryDirectory()
            defer { dir.cleanup() }
            let prelude = block.code.contains("ioasid init") ? "" : Self.doccShellPrelude
            let result = try Self.bash(prelude + block.code, in: dir.path)
            #expect(result.status == 0, "\(block) failed: \(result.stderr)")
        }
    }

    /// The names the DocC articles' Swift snippets use without declaring them; a
    /// snippet is the body of a synchronous function unless it awaits.
    static func doccSwiftContext(async: Bool) -> String {
        doccSwiftContextTemplate.replacingOccurrences(of: ") async throws {", with: async ? ") async throws {" : ") throws {")
    }

    static let doccSwiftContextTemplate = """
        import Foundation
        import IOASIDStore
        import Logging

        struct Device { func bind(_ id: IOASID) {} }
        func program(_ event: Event) throws {}

        func snippet(
            store: IOASIDStore, vm: SetID, pasid: IOASID, other: IOASID, source: IOASIDStore, destination: IOASIDStore,
            path: String, device: Device, logger: Logger, contextEntry: [UInt8]
        ) async throws {
        """

    @Test("The DocC articles' Swift blocks compile against the built modules", arguments: DocumentationTests.doccArticles)
    func doccSwift(article: String) throws {
        for block in try CodeBlock.blocks(in: article) where block.isSwift && !block.skipped {
            let body = block.code.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("import ") }.joined(separator: "\n")
            let context = Self.doccSwiftContext(async: body.contains("await"))
            let result = try Self.compile(context + "\n" + body + "\n}\n", fileName: "snippet.swift")
            #expect(result.ok, "\(block) does not compile cleanly:\n\(result.output)")
        }
    }

    @Test("docs/operations.md: every shell block runs, in order, in one shell (ssh host-b runs against a second store)")
    func runbook() throws {
        let blocks = try CodeBlock.blocks(in: Self.root + "/docs/operations.md").filter { $0.isShell && !$0.skipped }
        #expect(blocks.count >= 6)
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let prelude = """
            export IOASID_STORE="$PWD/var-lib-ioasid"
            backups="$PWD/backups"
            ssh() { local host="$1"; shift; IOASID_STORE="$PWD/$host" bash -c "$*"; }

            """
        let script = prelude + blocks.map { "# \($0)\n" + $0.code }.joined(separator: "\n")
        let result = try Self.bash(script, in: dir.path)
        #expect(result.status == 0, "the runbook failed: \(result.stderr)\n\(result.stdout.suffix(2000))")
        #expect(result.stdout.contains("clean:"), "verify ran")
        #expect(FileManager.default.fileExists(atPath: dir.child("backups/vm.export")))
        #expect(FileManager.default.fileExists(atPath: dir.child("host-b/data.mdb")), "the set moved to host-b's store")
    }
}
