import Foundation
import IOASIDStore
import IOASIDTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Issue 10, power loss: a command is run under `strace -f`, its file system
// calls are replayed into a model of what a power cut may keep, and the
// destination is checked at every point of the run.
//
// The model (what POSIX promises, no more): a directory entry made by open
// with O_CREAT, mkdir or rename (or removed by unlink or rename) survives a
// power cut only if its directory was fsynced after it; a file's data survives
// only if the file was fsynced (or fdatasynced) after the write, or the write
// went through an O_SYNC/O_DSYNC descriptor. An fsync covers what completed
// before it started and holds once it returned. Entry changes not yet covered
// may each have survived or not, in any combination. What existed before the
// command is taken as durable.

/// strace, parsed, and the power-loss model.
enum PowerLoss {
    /// The strace binary, if installed (Tools/test installs it).
    static let strace: String? = ["/usr/bin/strace", "/bin/strace"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// One system call, as strace printed it.
    struct Call {
        /// Line numbers where the call started and returned (they differ for a call another thread interrupted).
        let start: Int
        let end: Int
        let name: String
        let arguments: [String]
        /// The return value (nil when strace printed `?` or a pointer).
        let result: Int?
        let line: String
    }

    /// A traced run of a program.
    struct Trace {
        let outcome: Outcome
        let calls: [Call]
        let cwd: String

        /// Every path under `directory` that a call created (a file with O_CREAT, or a directory).
        func created(under directory: String) -> [String] {
            calls.compactMap { call -> String? in
                guard let result = call.result, result >= 0 else { return nil }
                switch call.name {
                case "mkdir": return PowerLoss.unquote(call.arguments[0])
                case "mkdirat": return PowerLoss.unquote(call.arguments[1])
                case "open", "openat":
                    let path = PowerLoss.unquote(call.arguments[call.name == "open" ? 0 : 1])
                    return call.arguments.contains(where: { $0.contains("O_CREAT") }) ? path : nil
                default: return nil
                }
            }.filter { $0.hasPrefix(directory + "/") }
        }
    }

    /// Runs `program ARGS` (default the built `ioasid`) under strace in `directory`.
    static func trace(
        _ arguments: [String], in directory: String, program: String = Hostile.ioasid, timeout: Duration = .seconds(120)
    ) throws -> Trace {
        guard let strace else { throw SupportCheckFailed("strace is not installed") }
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        let output = scratch.child("trace")
        let child = try Child(
            strace, ["-f", "-qq", "-e", "signal=none", "-s", "0", "-e", "trace=%file,%desc,sync", "-o", output, "--", program] + arguments,
            directory: directory
        )
        let outcome = child.wait(timeout: timeout)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard !text.isEmpty else { throw SupportCheckFailed("strace wrote no trace (is ptrace allowed here?): \(outcome.summary)") }
        return Trace(outcome: outcome, calls: parse(text), cwd: directory)
    }

    /// Parses `strace -f -o` output (a thread ID before each call; calls interrupted
    /// by another thread's are joined with their `resumed` half).
    static func parse(_ text: String) -> [Call] {
        var pending: [Int: (start: Int, text: String)] = [:]
        var calls: [Call] = []
        for (index, raw) in text.split(separator: "\n").enumerated() {
            let digits = raw.prefix(while: \.isNumber)
            guard let tid = Int(digits) else { continue }
            let line = raw.dropFirst(digits.count).drop(while: { $0 == " " })
            if line.hasPrefix("<... ") {
                guard let resumed = line.range(of: " resumed>"), let first = pending.removeValue(forKey: tid) else { continue }
                let rest = line[resumed.upperBound...]
                if rest.contains("<unfinished ...>") { continue }
                if let call = call(first.text + rest, start: first.start, end: index) { calls.append(call) }
            } else if line.hasSuffix("<unfinished ...>") {
                pending[tid] = (index, String(line.dropLast("<unfinished ...>".count)))
            } else if let call = call(String(line), start: index, end: index) {
                calls.append(call)
            }
        }
        return calls.sorted { $0.end < $1.end }
    }

    private static func call(_ text: String, start: Int, end: Int) -> Call? {
        guard let open = text.firstIndex(of: "("), !text.hasPrefix("+++"), !text.hasPrefix("---") else { return nil }
        let name = String(text[..<open])
        var arguments: [String] = []
        var current = ""
        var depth = 0
        var quoted = false
        var escaped = false
        var index = text.index(after: open)
        var closed: String.Index?
        while index < text.endIndex {
            let c = text[index]
            if quoted {
                current.append(c)
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { quoted = false }
            } else if c == "\"" {
                quoted = true
                current.append(c)
            } else if c == "(" || c == "[" || c == "{" {
                depth += 1
                current.append(c)
            } else if c == ")" && depth == 0 {
                closed = index
                break
            } else if c == ")" || c == "]" || c == "}" {
                depth -= 1
                current.append(c)
            } else if c == "," && depth == 0 {
                arguments.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            } else {
                current.append(c)
            }
            index = text.index(after: index)
        }
        guard let closed else { return nil }
        let last = current.trimmingCharacters(in: .whitespaces)
        if !last.isEmpty || !arguments.isEmpty { arguments.append(last) }
        let tail = text[text.index(after: closed)...]
        guard let equals = tail.range(of: "= ") else { return nil }
        let value = tail[equals.upperBound...].prefix { $0 != " " }
        return Call(start: start, end: end, name: name, arguments: arguments, result: Int(value), line: text)
    }

    /// A quoted path as strace prints it, unquoted (with C escapes undone).
    static func unquote(_ argument: String) -> String {
        guard argument.hasPrefix("\""), let close = argument.lastIndex(of: "\""), close != argument.startIndex else { return argument }
        var bytes: [UInt8] = []
        var chars = Array(argument[argument.index(after: argument.startIndex)..<close].utf8)[...]
        while let c = chars.popFirst() {
            guard c == UInt8(ascii: "\\"), let next = chars.popFirst() else {
                bytes.append(c)
                continue
            }
            switch next {
            case UInt8(ascii: "n"): bytes.append(0x0a)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "x"):
                let hex = String(decoding: chars.prefix(2), as: UTF8.self)
                chars = chars.dropFirst(2)
                bytes.append(UInt8(hex, radix: 16) ?? 0)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var octal = [next]
                while octal.count < 3, let d = chars.first, d >= UInt8(ascii: "0"), d <= UInt8(ascii: "7") { octal.append(chars.removeFirst()) }
                bytes.append(UInt8(String(decoding: octal, as: UTF8.self), radix: 8) ?? 0)
            default: bytes.append(next)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `path` made absolute against `base` and tidied (`.`, `..`, repeated and trailing slashes).
    static func normalize(_ path: String, base: String) -> String {
        var parts: [Substring] = []
        for part in ((path.hasPrefix("/") ? "" : base + "/") + path).split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// What a destination must be once the command has returned.
    enum Destination {
        /// A file, whole.
        case file(String)
        /// A directory holding these entries; those marked `true` must hold all their data too.
        case directory(String, entries: [String: Bool])

        var path: String {
            switch self {
            case .file(let path), .directory(let path, _): path
            }
        }
    }

    /// The verdict of the model on one run.
    struct Verdict {
        var cuts = 0
        var calls = 0
        var problems: [String] = []
    }

    /// Replays the trace into the model and checks `destination` at every cut.
    static func check(_ trace: Trace, root: String, preexisting: [String], destination: Destination) -> Verdict {
        let model = Model(root: root, preexisting: preexisting, cwd: trace.cwd)
        for call in trace.calls { model.apply(call) }
        var verdict = Verdict(calls: model.relevant.count, problems: model.unmodelled)
        let cuts = [-1] + model.relevant.map(\.end) + [Int.max]
        verdict.cuts = cuts.count
        for cut in cuts {
            let states = model.states(of: destination, at: cut)
            if ProcessInfo.processInfo.environment["IOASID_POWERLOSS_DEBUG"] != nil { print("cut \(cut): \(states)") }
            let final = cut == Int.max
            let label = cut == -1 ? "before the first call" : final ? "after the command returned" : "right after `\(model.relevant.first { $0.end == cut }?.line ?? "?")`"
            for state in states {
                switch state {
                case .absent where final:
                    verdict.problems.append("\(destination.path) may be missing \(label) (an entry was not made durable)")
                case .partial(let why):
                    verdict.problems.append("\(destination.path) may be half-made \(label): \(why)")
                case .absent, .whole:
                    continue
                }
            }
            if verdict.problems.count > 20 { break }
        }
        return verdict
    }

    /// Directories, files and their durability, replayed from system calls.
    final class Model {
        final class Inode {
            let id: Int
            let isDirectory: Bool
            /// Entries before the command (taken as durable).
            var initial: [String: Int] = [:]
            /// Entry changes: (line, [(name, inode or nil for a removal)]), applied atomically each.
            var changes: [(end: Int, edits: [(String, Int?)])] = []
            /// Writes: (line, through an O_SYNC/O_DSYNC descriptor).
            var writes: [(end: Int, synchronous: Bool)] = []
            /// fsync/fdatasync: (start line, end line).
            var syncs: [(start: Int, end: Int)] = []

            init(id: Int, isDirectory: Bool) {
                self.id = id
                self.isDirectory = isDirectory
            }
        }

        enum State {
            case absent
            case whole
            case partial(String)
        }

        let root: String
        let cwd: String
        var inodes: [Inode] = []
        /// The running namespace under `root`: path → inode.
        var paths: [String: Int] = [:]
        var descriptors: [Int: (inode: Int?, path: String, synchronous: Bool)] = [:]
        var globalSyncs: [(start: Int, end: Int)] = []
        var relevant: [Call] = []
        var unmodelled: [String] = []

        init(root: String, preexisting: [String], cwd: String) {
            self.root = root
            self.cwd = cwd
            let top = make(directory: true)
            paths[root] = top.id
            for path in preexisting.sorted() {
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                let inode = make(directory: isDirectory.boolValue)
                paths[path] = inode.id
                if let parent = paths[FileSystemPath.parent(path)] {
                    inodes[parent].initial[FileSystemPath.name(path)] = inode.id
                }
            }
        }

        private func make(directory: Bool) -> Inode {
            let inode = Inode(id: inodes.count, isDirectory: directory)
            inodes.append(inode)
            return inode
        }

        private func tracked(_ path: String) -> Bool { path == root || path.hasPrefix(root + "/") }

        private func path(_ argument: String, relativeTo dirfd: String? = nil) -> String {
            let raw = PowerLoss.unquote(argument)
            var base = cwd
            if let dirfd, dirfd != "AT_FDCWD", let fd = Int(dirfd), let entry = descriptors[fd] { base = entry.path }
            return PowerLoss.normalize(raw, base: base)
        }

        private func note(_ call: Call) {
            if relevant.last?.end != call.end { relevant.append(call) }
        }

        /// Records an entry change in the parent of each path.
        private func link(_ path: String, to inode: Int?, _ call: Call) {
            guard tracked(path), path != root, let parent = paths[FileSystemPath.parent(path)] else { return }
            inodes[parent].changes.append((call.end, [(FileSystemPath.name(path), inode)]))
            note(call)
        }

        func apply(_ call: Call) {
            let a = call.arguments
            guard let result = call.result, result >= 0 || ["close"].contains(call.name) else { return }
            switch call.name {
            case "open", "openat", "creat":
                let at = call.name == "openat" ? 1 : 0
                guard a.count > at else { return }
                let target = path(a[at], relativeTo: call.name == "openat" ? a[0] : nil)
                let flags = call.name == "creat" ? "O_CREAT|O_WRONLY|O_TRUNC" : (a.count > at + 1 ? a[at + 1] : "")
                let synchronous = flags.contains("O_SYNC") || flags.contains("O_DSYNC")
                var inode = paths[target]
                if flags.contains("O_TMPFILE") {
                    inode = nil  // nameless: nothing to keep or lose
                } else if inode == nil, flags.contains("O_CREAT"), tracked(target) {
                    let file = make(directory: false)
                    paths[target] = file.id
                    link(target, to: file.id, call)
                    inode = file.id
                } else if let existing = inode, flags.contains("O_TRUNC") {
                    inodes[existing].writes.append((call.end, false))
                    note(call)
                }
                descriptors[result] = (inode, target, synchronous)
            case "mkdir", "mkdirat":
                let target = path(a[call.name == "mkdirat" ? 1 : 0], relativeTo: call.name == "mkdirat" ? a[0] : nil)
                guard tracked(target) else { return }
                let directory = make(directory: true)
                paths[target] = directory.id
                link(target, to: directory.id, call)
            case "rename", "renameat", "renameat2":
                let (from, to) = call.name == "rename" ? (path(a[0]), path(a[1])) : (path(a[1], relativeTo: a[0]), path(a[3], relativeTo: a[2]))
                guard tracked(from) || tracked(to), let moved = paths[from] else { return }
                if FileSystemPath.parent(from) == FileSystemPath.parent(to), let parent = paths[FileSystemPath.parent(to)] {
                    inodes[parent].changes.append((call.end, [(FileSystemPath.name(from), nil), (FileSystemPath.name(to), moved)]))
                    note(call)
                } else {
                    link(to, to: moved, call)
                    link(from, to: nil, call)
                }
                // Move the running namespace (the path and everything below it).
                for (p, id) in paths where p == from || p.hasPrefix(from + "/") {
                    paths.removeValue(forKey: p)
                    paths[to + p.dropFirst(from.count)] = id
                }
            case "unlink", "unlinkat", "rmdir":
                let target = call.name == "unlinkat" ? path(a[1], relativeTo: a[0]) : path(a[0])
                guard paths[target] != nil else { return }
                paths.removeValue(forKey: target)
                link(target, to: nil, call)
            case "write", "pwrite64", "writev", "pwritev", "pwritev2", "ftruncate", "fallocate":
                written(Int(a[0]), call)
            case "copy_file_range", "splice":
                written(Int(a[2]), call)
            case "sendfile", "sendfile64":
                written(Int(a[0]), call)
            case "truncate":
                if let inode = paths[path(a[0])] {
                    inodes[inode].writes.append((call.end, false))
                    note(call)
                }
            case "fsync", "fdatasync":
                guard let fd = Int(a[0]), let inode = descriptors[fd]?.inode else { return }
                inodes[inode].syncs.append((call.start, call.end))
                note(call)
            case "sync", "syncfs":
                globalSyncs.append((call.start, call.end))
                note(call)
            case "close":
                if let fd = Int(a[0]) { descriptors.removeValue(forKey: fd) }
            case "dup", "dup2", "dup3":
                if let fd = Int(a[0]), let entry = descriptors[fd] { descriptors[result] = entry }
            case "fcntl" where a.count > 1 && a[1].hasPrefix("F_DUPFD"):
                if let fd = Int(a[0]), let entry = descriptors[fd] { descriptors[result] = entry }
            case "link", "linkat", "symlink", "symlinkat":
                if call.arguments.contains(where: { tracked(PowerLoss.unquote($0)) }) { unmodelled.append("unmodelled: \(call.line)") }
            case "mmap" where a.count > 4 && a[2].contains("PROT_WRITE") && a[3].contains("MAP_SHARED"):
                if let fd = Int(a[4]), let entry = descriptors[fd], entry.inode != nil, !entry.path.hasSuffix("/lock.mdb") {
                    unmodelled.append("a shared writable mapping of \(entry.path): its writes are not modelled")
                }
            default:
                break
            }
        }

        private func written(_ fd: Int?, _ call: Call) {
            guard let fd, let entry = descriptors[fd], let inode = entry.inode else { return }
            inodes[inode].writes.append((call.end, entry.synchronous))
            note(call)
        }

        /// The latest start of a sync of `inode` (or of everything) that had returned by `cut`.
        private func lastSync(_ inode: Inode, at cut: Int) -> Int {
            (inode.syncs + globalSyncs).filter { $0.end <= cut }.map(\.start).max() ?? -1
        }

        /// Every entry map a power cut at `cut` may leave in directory `inode`.
        func entryMaps(_ inode: Inode, at cut: Int) -> [[String: Int]] {
            let synced = lastSync(inode, at: cut)
            var base = inode.initial
            var uncertain: [[(String, Int?)]] = []
            for change in inode.changes where change.end <= cut {
                if change.end < synced {
                    for (name, target) in change.edits { base[name] = target }
                } else {
                    uncertain.append(change.edits)
                }
            }
            guard uncertain.count <= 12 else {
                unmodelled.append("more than 12 unsynced entry changes in one directory: only the synced state was checked")
                return [base]
            }
            var maps: [[String: Int]] = []
            for mask in 0..<(1 << uncertain.count) {
                var map = base
                for (k, edits) in uncertain.enumerated() where mask & (1 << k) != 0 {
                    for (name, target) in edits { map[name] = target }
                }
                maps.append(map)
            }
            return maps
        }

        /// Whether every write the command ever made to `inode` is durable at `cut`.
        func dataWhole(_ inode: Inode, at cut: Int) -> Bool {
            let synced = lastSync(inode, at: cut)
            return inode.writes.allSatisfy { ($0.synchronous && $0.end <= cut) || $0.end < synced }
        }

        /// What `destination` may be after a power cut at `cut`.
        func states(of destination: Destination, at cut: Int) -> [State] {
            let components = destination.path.dropFirst(root.count).split(separator: "/").map(String.init)
            var candidates: Set<Int?> = [paths[root] ?? 0]
            for name in components {
                var next = Set<Int?>()
                for candidate in candidates {
                    guard let id = candidate else {
                        next.insert(nil)
                        continue
                    }
                    for map in entryMaps(inodes[id], at: cut) { next.insert(map[name]) }
                }
                candidates = next
            }
            return candidates.map { candidate -> State in
                guard let id = candidate else { return .absent }
                let inode = inodes[id]
                switch destination {
                case .file:
                    return dataWhole(inode, at: cut) ? .whole : .partial("its data was not synced")
                case .directory(_, let entries):
                    for map in entryMaps(inode, at: cut) {
                        for (name, needsData) in entries.sorted(by: { $0.key < $1.key }) {
                            guard let child = map[name] else { return .partial("\(name) may be missing from it") }
                            if needsData, !dataWhole(inodes[child], at: cut) { return .partial("\(name)'s data was not synced") }
                        }
                    }
                    return .whole
                }
            }
        }
    }

    /// Creations, modes and mode changes under `root` that are not private.
    static func privacyProblems(_ trace: Trace, root: String) -> [String] {
        var problems: [String] = []
        for call in trace.calls {
            guard let result = call.result, result >= 0 else { continue }
            let a = call.arguments
            switch call.name {
            case "open", "openat", "creat", "mkdir", "mkdirat":
                let at = ["openat", "mkdirat"].contains(call.name) ? 1 : 0
                guard a.count > at, PowerLoss.unquote(a[at]).hasPrefix(root) else { continue }
                let creates = call.name.hasPrefix("mkdir") || call.name == "creat" || a.contains { $0.contains("O_CREAT") || $0.contains("O_TMPFILE") }
                guard creates, let mode = a.last.flatMap({ UInt32($0, radix: 8) }) else { continue }
                if mode & 0o077 != 0 { problems.append("created open to others (mode \(String(mode, radix: 8))): \(call.line)") }
            case "chmod", "fchmod", "fchmodat", "chown", "fchown", "fchownat", "lchown":
                problems.append("changes a mode or owner after creation: \(call.line)")
            default:
                continue
            }
        }
        return problems
    }
}

enum FileSystemPath {
    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func name(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
}

@Suite("Power loss: init, backup and export --out under a model of what a power cut keeps", .serialized)
struct PowerLossTests {
    /// Every path under `directory` (which the model takes as durable).
    static func existing(_ directory: String) -> [String] {
        Hostile.tree(directory).map { directory + "/" + String($0.split(separator: " ")[0]) }
    }

    /// Traces `arguments` in a fresh directory prepared by `prepare`, and checks `destination` (relative to it).
    static func run(
        _ what: String, program: String = Hostile.ioasid, prepare: (String) throws -> Void = { _ in },
        arguments: (String) -> [String], destination: (String) -> PowerLoss.Destination
    ) throws -> (PowerLoss.Verdict, PowerLoss.Trace) {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        try prepare(dir.path)
        let before = Self.existing(dir.path)  // taken as durable
        let trace = try PowerLoss.trace(arguments(dir.path), in: dir.path, program: program)
        #expect(trace.outcome.status == 0, "\(what): \(trace.outcome.summary)")
        let verdict = PowerLoss.check(trace, root: dir.path, preexisting: before, destination: destination(dir.path))
        print("power loss, \(what): \(trace.calls.count) calls traced, \(verdict.calls) that change files, \(verdict.cuts) cut points, \(verdict.problems.count) problems")
        return (verdict, trace)
    }

    static let available = PowerLoss.strace != nil

    @Test("init: at every cut the store is absent or whole; once init returned it is durable; everything is created private",
          .enabled(if: available, "strace is not installed (Tools/test installs it)"))
    func initialise() throws {
        let (verdict, trace) = try Self.run("init", arguments: { ["--store", $0 + "/store", "init", "--capacity", "4096", "--system-quota", "8"] },
                                            destination: { .directory($0 + "/store", entries: ["data.mdb": true, "lock.mdb": false]) })
        #expect(verdict.problems.isEmpty, "\(verdict.problems)")
        #expect(verdict.cuts > 10, "the model saw too little of the run")
        #expect(PowerLoss.privacyProblems(trace, root: trace.cwd).isEmpty, "\(PowerLoss.privacyProblems(trace, root: trace.cwd))")
    }

    @Test("backup: at every cut the backup is absent or whole; once it returned it is durable; everything is created private",
          .enabled(if: available, "strace is not installed (Tools/test installs it)"))
    func backup() throws {
        let (verdict, trace) = try Self.run(
            "backup",
            prepare: { try Hostile.makeStore($0 + "/store", sets: [.init(token: "vm:a", count: 300, dataSize: 1000, guests: true)]) },
            arguments: { ["--store", $0 + "/store", "backup", $0 + "/backup"] },
            destination: { .directory($0 + "/backup", entries: ["data.mdb": true]) }
        )
        #expect(verdict.problems.isEmpty, "\(verdict.problems)")
        #expect(PowerLoss.privacyProblems(trace, root: trace.cwd).isEmpty, "\(PowerLoss.privacyProblems(trace, root: trace.cwd))")
    }

    @Test("migrate export --out: at every cut the file is absent or whole; once it returned it is durable; it is created private",
          .enabled(if: available, "strace is not installed (Tools/test installs it)"))
    func exportOut() throws {
        let (verdict, trace) = try Self.run(
            "export --out",
            prepare: { try Hostile.makeStore($0 + "/store", sets: [.init(token: "vm:a", count: 300, dataSize: 1000, guests: true)]) },
            arguments: { ["--store", $0 + "/store", "migrate", "export", "--set", "2", "--out", $0 + "/export.jsonl"] },
            destination: { .file($0 + "/export.jsonl") }
        )
        #expect(verdict.problems.isEmpty, "\(verdict.problems)")
        #expect(PowerLoss.privacyProblems(trace, root: trace.cwd).isEmpty, "\(PowerLoss.privacyProblems(trace, root: trace.cwd))")
    }

    @Test("Controls: the model passes a write + fsync + rename + directory fsync, and catches a missing directory fsync or file fsync",
          .enabled(if: available, "strace is not installed (Tools/test installs it)"),
          arguments: ["full", "no-dir-sync", "no-file-sync"])
    func controls(mode: String) throws {
        let (verdict, _) = try Self.run(
            "atomic-write \(mode)", program: Hostile.worker,
            arguments: { ["atomic-write", $0 + "/out", mode] }, destination: { .file($0 + "/out") }
        )
        switch mode {
        case "full":
            #expect(verdict.problems.isEmpty, "\(verdict.problems)")
        case "no-dir-sync":
            #expect(verdict.problems.contains { $0.contains("may be missing after the command returned") }, "\(verdict.problems)")
            #expect(!verdict.problems.contains { $0.contains("half-made") }, "\(verdict.problems)")
        default:
            #expect(verdict.problems.contains { $0.contains("half-made") && $0.contains("not synced") }, "\(verdict.problems)")
        }
    }

    @Test("The parser joins calls interrupted by another thread and reads flags, modes and descriptors")
    func parser() {
        let text = """
            100  openat(AT_FDCWD, "/r/.t", O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600) = 5
            101  write(5, ""..., 4096 <unfinished ...>
            100  fsync(7)                          = 0
            101  <... write resumed>)              = 4096
            100  renameat2(AT_FDCWD, "/r/.t", AT_FDCWD, "/r/a \\"b\\"", RENAME_NOREPLACE) = 0
            100  mkdir("/r/d", 0700) = -1 EEXIST (File exists)
            100  +++ exited with 0 +++
            """
        let calls = PowerLoss.parse(text)
        #expect(calls.map(\.name) == ["openat", "fsync", "write", "renameat2", "mkdir"])
        #expect(calls[0].arguments == ["AT_FDCWD", "\"/r/.t\"", "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC", "0600"])
        #expect(calls[0].result == 5)
        #expect(calls[2].start == 1 && calls[2].end == 3 && calls[2].result == 4096)
        #expect(PowerLoss.unquote(calls[3].arguments[3]) == "/r/a \"b\"")
        #expect(calls[4].result == -1)
    }
}
